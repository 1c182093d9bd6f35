"""Learning curves: metrics.csv per epoch, the picture after each epoch, and `nmt plot`."""
import itertools

import pytest

from nmt import cli
from nmt.evaluation import curves, plotting
from tests.helpers import metrics_rows


def test_each_epoch_logs_dev_perplexity_and_time_and_draws_the_curve(reverse_run):
    rows = metrics_rows(reverse_run)
    assert len(rows) == 5
    curve = curves.run_curve(reverse_run)
    assert curve.epochs == (1, 2, 3, 4, 5)
    assert curve.bleu == tuple(float(r["val_bleu"]) for r in rows)
    assert curve.ppl == tuple(float(r["val_ppl"]) for r in rows)
    assert curve.ppl[-1] < curve.ppl[0]  # the reverse task is learned
    seconds = [float(r["epoch_seconds"]) for r in rows]
    assert all(s >= float(r["train_seconds"]) for s, r in zip(seconds, rows))
    assert curve.minutes == pytest.approx([m / 60 for m in itertools.accumulate(seconds)])
    assert (reverse_run / "learning_curve.png").stat().st_size > 5000


def test_the_picture_plots_the_curves_it_is_given(tmp_path, reverse_run):
    peer = curves.Curve("peer", (1, 2), (5.0, 11.0), (40.0, 20.0), None)
    run = curves.run_curve(reverse_run)
    figure = plotting.learning_curves([run, peer], tmp_path / "both.png")
    bleu_epoch, bleu_time, ppl_epoch, ppl_time = figure.axes
    ours, theirs = bleu_epoch.lines
    assert list(ours.get_xdata()) == list(run.epochs)
    assert list(ours.get_ydata()) == list(run.bleu)
    assert list(theirs.get_ydata()) == [5.0, 11.0]
    assert list(ppl_epoch.lines[1].get_ydata()) == [40.0, 20.0]
    # The peer has no times: only our run appears against wall-clock minutes.
    assert len(bleu_time.lines) == len(ppl_time.lines) == 1
    assert list(ppl_time.lines[0].get_xdata()) == list(run.minutes)
    assert (tmp_path / "both.png").stat().st_size > 5000


def test_plot_command_overlays_runs_and_a_peer_csv(tmp_path, reverse_run, capsys):
    peer = tmp_path / "joeynmt.csv"
    peer.write_text("epoch,bleu,ppl,minutes\n1,5.6,42.7,10.5\n2,11.7,21.7,21\n")
    out = tmp_path / "curves.png"
    assert cli.main(["plot", str(reverse_run), str(reverse_run / "metrics.csv"), "-o", str(out),
                     "--peer", str(peer)]) == 0
    assert "3 curves" in capsys.readouterr().out
    assert out.stat().st_size > 5000
    assert curves.peer_curve(peer).minutes == (10.5, 21.0)


@pytest.mark.parametrize("content, fragment", [
    ("epoch,bleu\n1,5\n", "joeynmt.csv:1: no column ppl"),
    ("epoch,bleu,ppl\n1,5,40\n2,x,20\n", "joeynmt.csv:3: not a number: 'x'"),
    ("epoch,bleu,ppl\n", "joeynmt.csv: no epochs"),
])
def test_a_bad_peer_csv_is_a_one_line_error(tmp_path, reverse_run, capsys, content, fragment):
    peer = tmp_path / "joeynmt.csv"
    peer.write_text(content)
    out = tmp_path / "curves.png"
    assert cli.main(["plot", str(reverse_run), "-o", str(out), "--peer", str(peer)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nmt: error: ") and fragment in err and err.count("\n") == 1, err
    assert not out.exists()


def test_plot_of_a_folder_without_metrics_names_the_file(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path), "-o", str(tmp_path / "x.png")]) == 1
    assert "metrics.csv: cannot read" in capsys.readouterr().err
