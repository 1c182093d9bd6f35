import subprocess
import sys

import pytest
import sacrebleu

from nmt import cli
from nmt.evaluation import metrics

HYPS = ["the cat sat on the mat .", "a dog barks", "nothing matches here", ""]
REFS = ["the cat sat on a mat .", "the dog barks loudly", "something else entirely", "empty"]


def test_scores_equal_sacrebleu():
    ours = {s.name: s for s in metrics.corpus_scores(HYPS, REFS, tokenize="13a")}
    assert ours["BLEU"].score == sacrebleu.corpus_bleu(HYPS, [REFS]).score
    assert ours["chrF"].score == sacrebleu.corpus_chrf(HYPS, [REFS]).score
    assert ours["TER"].score == sacrebleu.corpus_ter(HYPS, [REFS]).score
    assert ours["BLEU"].signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert "tok:none" in metrics.bleu(HYPS, REFS, tokenize="none").signature


def test_nmt_bleu_equals_the_sacrebleu_command(tmp_path, capsys):
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("".join(r + "\n" for r in REFS))
    hyp.write_text("".join(h + "\n" for h in HYPS))
    assert cli.main(["bleu", str(ref), "-i", str(hyp)]) == 0
    ours = capsys.readouterr().out
    theirs = subprocess.run([sys.executable, "-m", "sacrebleu", str(ref), "-i", str(hyp), "-b",
                             "-w", "2"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert ours.startswith(f"BLEU = {theirs} ")
    assert "signature: nrefs:1|case:mixed|eff:no|tok:13a" in ours
    assert "chrF2 = " in ours and "TER = " in ours


def test_nmt_bleu_reads_stdin_and_never_imports_tensorflow(tmp_path):
    ref = tmp_path / "ref.txt"
    ref.write_text("a b c d\n")
    code = ("import sys; from nmt.cli import main; rc = main(['bleu', sys.argv[1]]); "
            "print('tf', 'tensorflow' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code, str(ref)], input="a b c d\n",
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("BLEU = 100.00") and out.strip().endswith("tf False 0")


@pytest.mark.parametrize("hyp_text, reason", [("a\nb\n", "2 lines, but the reference"),
                                              ("a\r\n", "CRLF")])
def test_nmt_bleu_bad_input_is_one_line(tmp_path, capsys, hyp_text, reason):
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("a\n")
    hyp.write_bytes(hyp_text.encode())
    assert cli.main(["bleu", str(ref), "-i", str(hyp)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"nmt: error: {hyp}") and reason in err and err.count("\n") == 1
