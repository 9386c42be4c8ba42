from hypothesis import given, settings
from hypothesis import strategies as st

from l2t_core.episodes import parse_episodes


def texts(parsed):
    return [e.text for e in parsed.episodes]


def test_well_formed_tags_inside_think():
    text = "<think>\n<episode_1>a = 1</episode_1>\n<episode_2>b = 2</episode_2>\n</think>\nSo \\boxed{3}."
    parsed = parse_episodes(text)
    assert parsed.tagged
    assert texts(parsed) == ["<episode_1>a = 1</episode_1>", "<episode_2>b = 2</episode_2>"]
    assert parsed.answer_text == "\n</think>\nSo \\boxed{3}."
    assert parsed.prompt_side_end == text.index("<episode_1>")


def test_mismatched_numbers_and_unclosed_last_tag():
    text = "<episode_3>first</episode_7> <episode_3>second</episode_3><episode_9>third, never closed\nThe answer is 4"
    parsed = parse_episodes(text)
    assert [e.index for e in parsed.episodes] == [1, 2, 3]
    assert texts(parsed) == [
        "<episode_3>first</episode_7>",
        "<episode_3>second</episode_3>",
        "<episode_9>third, never closed",
    ]
    assert parsed.answer_text == "\nThe answer is 4"


def test_nested_open_tag_closes_the_open_episode():
    parsed = parse_episodes("<episode_1>outer <episode_2>inner</episode_2> tail</episode_1>")
    assert texts(parsed) == ["<episode_1>outer ", "<episode_2>inner</episode_2>", "tail</episode_1>"]


def test_text_outside_tags_stays_out_of_episodes():
    text = "Let me think. <episode_1>x</episode_1> between <episode_2>y</episode_2> Final: 3"
    parsed = parse_episodes(text)
    assert texts(parsed) == ["<episode_1>x</episode_1>", "<episode_2>y</episode_2>"]
    assert parsed.prompt_side_end == len("Let me think. ")
    assert parsed.answer_text == " Final: 3"


def test_unclosed_last_tag_stops_at_think_close():
    parsed = parse_episodes("<think><episode_1>a</episode_1><episode_2>b is long</think>The answer is 2")
    assert texts(parsed)[-1] == "<episode_2>b is long"


def test_untagged_text_splits_on_blank_lines_and_keeps_the_answer_apart():
    text = "First we add 17 and 25.\n\nThat gives 42 in total.\n\nThe answer is 42."
    parsed = parse_episodes(text)
    assert not parsed.tagged
    assert texts(parsed) == ["First we add 17 and 25.", "That gives 42 in total."]
    assert parsed.answer_text == "The answer is 42."


def test_untagged_single_paragraph_splits_on_line_breaks_and_merges_tiny_fragments():
    text = "We need the total of both numbers.\nStep 2:\nThe sum 17 + 25 equals 42 here.\nok"
    parsed = parse_episodes(text)
    # a tiny fragment (a heading) joins the fragment after it; a tiny last one joins the one before
    assert texts(parsed) == ["We need the total of both numbers.", "Step 2:\nThe sum 17 + 25 equals 42 here.\nok"]


def test_cap_merges_neighbours():
    text = "\n\n".join(f"Step number {i} of the long derivation." for i in range(50))
    parsed = parse_episodes(text, max_episodes=30)
    assert len(parsed.episodes) == 30
    assert parsed.episodes[0].start == 0 and parsed.episodes[-1].end == len(text)
    tagged = "".join(f"<episode_{i}>step {i}</episode_{i}>" for i in range(1, 41))
    assert len(parse_episodes(tagged).episodes) == 30


def test_empty_and_whitespace_text():
    for text in ["", "   \n\n  "]:
        parsed = parse_episodes(text)
        assert parsed.episodes == ()


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=30),
            st.sampled_from(
                [
                    "<episode_1>",
                    "</episode_1>",
                    "<episode_2>",
                    "</episode_9>",
                    "<think>",
                    "</think>",
                    "\n\n",
                    "\n",
                    "The answer is 5",
                    "\\boxed{7}",
                    "<episode_>",
                    "< / episode_3 >",
                ]
            ),
        ),
        max_size=25,
    ).map("".join),
    st.integers(min_value=1, max_value=40),
)
def test_never_raises_and_spans_are_consistent(text, cap):
    parsed = parse_episodes(text, max_episodes=cap)
    assert len(parsed.episodes) <= cap
    previous_end = 0
    for i, episode in enumerate(parsed.episodes, start=1):
        assert episode.index == i
        assert previous_end <= episode.start < episode.end <= len(text)
        assert episode.text == text[episode.start : episode.end]
        previous_end = episode.end
    assert previous_end <= parsed.answer_start <= len(text)
