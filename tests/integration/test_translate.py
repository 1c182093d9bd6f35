import dataclasses

import pytest

from nmt.errors import DataError


@pytest.fixture(scope="module")
def translator(reverse_run):
    from nmt.translation.translate import Translator
    return Translator(reverse_run, beam_size=3)


def test_translates_and_keeps_order_across_chunks(translator):
    lines = ["1 2 3", "4 5", "", "9 8 7 6", "0 1"] * 3
    found = translator.translate(lines)
    assert [t[0].text for t in found[:5]] == ["3 2 1", "5 4", "", "6 7 8 9", "1 0"]
    streamed = [t[0].text for t in translator.translate_stream(iter(lines), chunk_lines=2)]
    assert streamed == [t[0].text for t in found]


def test_nbest_lists_are_sorted_and_distinct(translator):
    nbest = translator.translate(["3 1 4 1 5"], nbest=3)[0]
    assert len(nbest) == 3 and nbest[0].text == "5 1 4 1 3"
    assert [t.score for t in nbest] == sorted((t.score for t in nbest), reverse=True)
    assert len({t.text for t in nbest}) == 3


def test_length_penalty_kinds(reverse_run):
    from nmt.translation.translate import Translator
    lines = ["3 1 4 1 5", "2 7"]
    for kind, penalty in (("average", lambda n: n), ("gnmt", lambda n: (5 + n) / 6)):
        found = Translator(reverse_run, beam_size=3, alpha=1.0,
                           length_penalty=kind).translate(lines)
        for t in (hyps[0] for hyps in found):
            length = len(t.ids) + 1  # EOS counts
            assert t.score == pytest.approx(t.log_prob / penalty(length), rel=1e-5)


def test_long_lines_are_translated_in_pieces(translator):
    long = dataclasses.replace(translator.decode, max_input_len=4)
    translator.decode, saved = long, translator.decode
    try:
        found = translator.translate(["1 2 3 4 5 6 7"])[0]
    finally:
        translator.decode = saved
    assert found[0].text == "4 3 2 1 7 6 5"


def test_file_output_formats(translator, tmp_path):
    from nmt.translation.translate import translate_file
    source = tmp_path / "in.txt"
    source.write_text("1 2 3\n\n7 8\n")
    out = tmp_path / "out.txt"
    assert translate_file(translator, str(source), str(out)) == 3
    assert out.read_text() == "3 2 1\n\n8 7\n"
    translate_file(translator, str(source), str(out), nbest=2)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("0 ||| 3 2 1 ||| ") and lines[2].startswith("1 |||  ||| ")
    # The blank line has as many (blank) entries as the others.
    assert [line.split(" ||| ")[0] for line in lines] == ["0", "0", "1", "1", "2", "2"]
    translate_file(translator, str(source), str(out), scores=True, alignments=True)
    first = out.read_text().splitlines()[0].split("\t")
    assert float(first[0]) < 0 and first[1] == "3 2 1"
    # Reversal: output token t attends to source token n-1-t.
    assert first[2] == "2-0 1-1 0-2"
    for line, source in zip(out.read_text().splitlines(), ["1 2 3", "", "7 8"]):
        links = line.split("\t")[2].split()
        assert all(int(link.split("-")[0]) < len(source.split()) for link in links)


def test_bad_input_leaves_no_output_file(translator, tmp_path):
    from nmt.translation.translate import translate_file
    source = tmp_path / "in.txt"
    source.write_bytes(b"1 2\n3 \xff 4\n")
    out = tmp_path / "out.txt"
    with pytest.raises(DataError, match=r"in.txt:2: invalid UTF-8"):
        translate_file(translator, str(source), str(out))
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["in.txt"]


def test_one_decode_config_overridable_per_call(translator):
    from nmt.errors import ConfigError
    lines = ["3 1 4 1 5", "2 7"]
    before = translator.decode
    assert before.alpha == 1.0
    for hyps in translator.translate(lines, beam_size=1, alpha=0.0):
        assert hyps[0].score == hyps[0].log_prob  # alpha 0: no normalization
    assert translator.decode is before  # the call changed nothing lasting
    again = translator.translate(lines)
    assert [h[0].text for h in again] == ["5 1 4 1 3", "7 2"]
    for hyps in again:  # the Translator's own alpha 1 again
        assert hyps[0].score == pytest.approx(hyps[0].log_prob / (len(hyps[0].ids) + 1))
    with pytest.raises(ConfigError, match="decode.length_penalty must be one of"):
        translator.translate(lines, length_penalty="linear")
