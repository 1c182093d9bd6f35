"""The `nmt` command: argparse subcommands, each one function call; errors as one line.

TensorFlow is imported only inside the verbs that run a model, so `nmt --help` and `nmt bleu`
start at once.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time

import nmt
from nmt.config import options
from nmt.errors import NmtError
from nmt.config import penalties
from nmt.files import textio
from nmt.serving.protocol import Limits
from nmt.system import termination

STARTED = time.perf_counter()


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        with termination.handled():
            return args.run(args) or 0
    except NmtError as err:
        print(f"nmt: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:  # SIGTERM (`Terminated`) or Ctrl-C
        terminated = isinstance(stop, termination.Terminated)
        print("nmt: terminated (SIGTERM)" if terminated else "nmt: interrupted", file=sys.stderr)
        # Exit at once, before a scheduler's SIGKILL: while the interpreter shuts down, the
        # collector would walk every object TensorFlow made (10-20 s on a loaded core).
        gc.freeze()
        return 143 if terminated else 130
    except BrokenPipeError:  # e.g. `nmt translate ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except OSError as err:  # a write error no command turned into its own message
        if err.errno not in textio.WRITE_ERRNOS or not err.filename:
            raise
        print(f"nmt: error: {err.filename}: cannot write ({err.strerror})", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmt", description="Recurrent neural machine translation: BiLSTM encoder, "
        "attentional LSTM decoder, beam search, BLEU and error analysis.")
    parser.add_argument("--version", action="version", version=f"nmt {nmt.__version__}")
    verbs = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = verbs.add_parser("train", help="train a recipe into a run directory (resumes if killed)",
                         description="Train a recipe. Running the same command again after a "
                         "crash continues from the last finished epoch.")
    p.add_argument("recipe", metavar="RECIPE", help="recipe folder or its recipe.yaml")
    p.add_argument("--run-dir", help="output folder (default: runs/<recipe name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override a recipe key (repeatable)")
    p.add_argument("--init-from", metavar="MODEL",
                   help=f"{options.get('train.init_from').help} (the recipe's train.init_from)")
    _threads(p)
    p.set_defaults(run=_train)

    p = verbs.add_parser("prepare", help="tokenize a recipe's training corpus once into shuffled "
                         "shards of token ids, for `nmt train --set data.prepared=DIR`",
                         description="Tokenize the training corpus of a recipe in parallel into "
                         "shuffled shards of token ids, with the vocabularies (trained on a "
                         "sample of the corpus unless the recipe takes another model's).")
    p.add_argument("recipe", metavar="RECIPE", help="recipe folder or its recipe.yaml")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder for the shards")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override a recipe key (repeatable)")
    p.add_argument("--jobs", type=_positive, help="processes that tokenize (default: one per "
                   "200,000 lines, at most one per core)")
    p.set_defaults(run=_prepare)

    p = verbs.add_parser("translate", help="translate lines (stdin to stdout by default)",
                         description="Translate one sentence per line, streaming in batches; "
                         "output keeps input order, a blank line gives a blank line.")
    _model(p)
    p.add_argument("-i", "--input", help="input file (default: stdin)")
    p.add_argument("-o", "--output", help="output file, written atomically (default: stdout)")
    _search(p)
    _precision(p, "decode")
    p.add_argument("--nbest", type=_positive, default=1,
                   help="K > 1: write the K best per line as 'index ||| text ||| score'")
    p.add_argument("--scores", action="store_true", help="prefix each line with 'score<TAB>'")
    p.add_argument("--alignments", action="store_true",
                   help="append '<TAB>src-tgt ...' links (argmax attention)")
    p.add_argument("--resume", action="store_true",
                   help="write -o in place and continue an interrupted run of the same command "
                   "after its last complete chunk (needs -i and -o files)")
    _threads(p)
    p.set_defaults(run=_translate)

    p = verbs.add_parser("serve", help="a translation server: JSON API, metrics and a web page",
                         description="Serve a model over HTTP (aiohttp): POST /translate (JSON), "
                         "GET /health, GET /metrics (Prometheus) and a web page at /. Concurrent "
                         "requests are merged into decoding batches. An access token, if wanted, "
                         "comes from $NMT_SERVE_TOKEN or --token-file, never the command line. "
                         "SIGTERM finishes the requests in flight and exits 0.")
    _model(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8080, help="TCP port (default 8080)")
    p.add_argument("--token-file", metavar="FILE", help="require 'Authorization: Bearer TOKEN' "
                   "with the token in FILE (default: $NMT_SERVE_TOKEN if set, else no token)")
    _search(p)
    _precision(p, "decode")
    limits = Limits()
    p.add_argument("--max-lines", type=_positive, default=limits.max_lines,
                   help=f"lines per request, 413 above (default {limits.max_lines})")
    p.add_argument("--max-line-chars", type=_positive, default=limits.max_line_chars,
                   help=f"characters per line, 413 above (default {limits.max_line_chars}); "
                   "lines longer than decode.max_input_len tokens are cut as nmt translate cuts "
                   "them")
    p.add_argument("--max-body-kb", type=_positive, default=1024,
                   help="request body size in KiB, 413 above (default 1024)")
    p.add_argument("--max-queue", type=_positive, default=1024,
                   help="sentences waiting for the model, 503 with Retry-After above "
                   "(default 1024)")
    p.add_argument("--batch-wait-ms", type=_non_negative, default=5,
                   help="how long a decoding batch smaller than the last one waits for more "
                   "requests (default 5)")
    p.add_argument("--timeout", type=_positive, default=60,
                   help="seconds a request may take, queueing included, 504 after (default 60)")
    _threads(p)
    p.set_defaults(run=_serve)

    p = verbs.add_parser("bleu", help="BLEU, chrF and TER of hypotheses against references",
                         description="Corpus BLEU, chrF and TER through sacrebleu, each with its "
                         "signature.")
    p.add_argument("reference", metavar="REF", help="reference file, one sentence per line")
    p.add_argument("-i", "--input", help="hypothesis file (default: stdin)")
    p.add_argument("--tokenize", default="13a", choices=options.get("eval.tokenize").choices,
                   metavar="T", help="sacrebleu tokenizer: %(choices)s (default 13a)")
    p.set_defaults(run=_bleu)

    p = verbs.add_parser("evaluate", help="translate a test set, score it and analyse errors",
                         description="Translate SRC, score against REF, and classify each "
                         "sentence as a search error or a model error; writes a report folder.")
    _model(p)
    p.add_argument("--src", required=True, help="source file")
    p.add_argument("--ref", required=True, help="reference file")
    _search(p)
    _precision(p, "decode")
    p.add_argument("--beams", type=_beam_list, help="beam widths of the sweep, e.g. 1,2,5,10,20 "
                   "(default: the recipe's eval.beam_sweep)")
    _mirror(p, "--tokenize", "eval.tokenize", metavar="T")
    p.add_argument("--heatmaps", type=_non_negative, default=5,
                   help="attention heatmaps of this many worst sentences (default 5)")
    p.add_argument("--show", type=int, action="append", default=[], metavar="LINE",
                   help="also plot the heatmap of this 1-based line (repeatable)")
    p.add_argument("--out", help="report folder (default: <model>/report-<src name>)")
    _threads(p)
    p.set_defaults(run=_evaluate)

    p = verbs.add_parser("score", help="the model's score of given translations",
                         description="Forced decoding of each (source, target) pair: one line "
                         "'log_p<TAB>score<TAB>tokens' per pair (tokens count </s>; score = "
                         "log_p / penalty(tokens)), the numbers of the search and the error "
                         "analysis.")
    _model(p)
    p.add_argument("--src", required=True, help="source file")
    p.add_argument("--tgt", required=True, help="target file, one translation per source line")
    p.add_argument("-o", "--output", help="output file, written atomically (default: stdout)")
    p.add_argument("--per-token", action="store_true",
                   help="append '<TAB>' and each token's log p (</s> last)")
    _score_setting(p)
    _mirror(p, "--batch-size", "decode.batch_size", type=_positive, help="pairs per batch")
    _threads(p)
    p.set_defaults(run=_score, beam_size=None)

    p = verbs.add_parser("average", help="average the weights of several epochs of a run",
                         description="Element-wise mean of the weights of the K best epochs "
                         "(dev BLEU; train.keep_best) or the K last (train.keep_last) of a run, "
                         "written as a model folder that translate, evaluate and score read.")
    p.add_argument("run_dir", metavar="RUN", help="run directory of `nmt train`")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--best", type=_positive, metavar="K", help="the K best epochs")
    which.add_argument("--last", type=_positive, metavar="K", help="the K last epochs")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="model folder to write (default: RUN/average-best-K or -last-K)")
    p.set_defaults(run=_average)

    p = verbs.add_parser("plot", help="learning curves of runs (and a peer's) in one PNG",
                         description="Dev BLEU and perplexity against epoch and wall-clock time, "
                         "read from each run's metrics.csv, overlaid in one picture.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directory (or its metrics.csv)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png", help="picture to write")
    p.add_argument("--peer", action="append", default=[], metavar="CSV",
                   help="another toolkit's curve: CSV with columns epoch, bleu, ppl[, minutes] "
                   "(repeatable; labelled with the file name)")
    p.set_defaults(run=_plot)

    p = verbs.add_parser("tune", help="choose beam width and alpha on dev data",
                         description="Dev BLEU over a grid of beam widths x alphas x length "
                         "penalties (default: the recipe's eval.tune_*); writes a table and a "
                         "heatmap; --write makes the best the model folder's decode default.")
    p.add_argument("--model", required=True, metavar="DIR", help="run directory of `nmt train`")
    p.add_argument("--src", required=True, help="dev source file")
    p.add_argument("--ref", required=True, help="dev reference file")
    p.add_argument("--beams", type=_beam_list, help="beam widths, e.g. 1,5,10")
    p.add_argument("--alphas", type=_alpha_list, help="alphas, e.g. 0,0.5,1")
    p.add_argument("--length-penalties", type=_penalty_list, metavar="KINDS",
                   help=f"comma-separated: {','.join(penalties.NAMES)}")
    _mirror(p, "--tokenize", "eval.tokenize", metavar="T")
    p.add_argument("--out", help="folder for tune.md and tune_heatmap.png "
                   "(default: <model>/tune-<src name>)")
    p.add_argument("--write", action="store_true",
                   help="store the best setting as the model folder's decode default (recipe.yaml, "
                   "with the grid in tune.json)")
    _mirror(p, "--batch-size", "decode.batch_size", type=_positive)
    _threads(p)
    p.set_defaults(run=_tune)

    p = verbs.add_parser("embeddings", help="nearest words and a 2-D map of a model's embeddings",
                         description="Look inside a model's embeddings: the words nearest to a "
                         "word by cosine similarity, and a map of the most frequent words on the "
                         "embeddings' first two principal components (PCA).")
    p.add_argument("--model", required=True, metavar="DIR",
                   help="run directory of `nmt train` or model folder of `nmt average`")
    p.add_argument("--side", choices=("src", "tgt"), default="src",
                   help="source or target embeddings (default src)")
    p.add_argument("--nearest", metavar="WORD", help="print the K words nearest to WORD")
    p.add_argument("-k", type=_positive, default=10, help="neighbours to print (default 10)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the map of the N most frequent words")
    p.add_argument("--words", type=_positive, default=200, metavar="N",
                   help="words on the map (default 200)")
    _threads(p)
    p.set_defaults(run=_embeddings)

    p = verbs.add_parser("export", help="write a SavedModel that translates raw lines",
                         description="Write one TensorFlow SavedModel holding the model, its "
                         "vocabularies and the search: signature serving_default (lines -> "
                         "translations, scores, log_probs [N, K]) and score (source, target -> "
                         "log_prob, score). Loading it needs TensorFlow only (and tensorflow-text "
                         "for SentencePiece models). Decode settings are fixed at export.")
    _model(p)
    p.add_argument("--out", required=True, metavar="EXPORT_DIR",
                   help="new (or empty) folder to write the SavedModel to")
    _search(p)
    _precision(p, "decode")
    p.add_argument("--nbest", type=_positive, default=1,
                   help="K: translations returned per line, best first (default 1)")
    _threads(p)
    p.set_defaults(run=_export)

    p = verbs.add_parser("verify", help="check a model folder or export against its manifest",
                         description="Hash every file that the folder's manifest.json lists "
                         "(sizes and sha256), then load a model folder's weights (found "
                         "complete and finite). Loading any model checks the sizes, and the "
                         "hashes of files changed or copied since they were last checked.")
    p.add_argument("model", metavar="DIR", help="model folder, run directory or export")
    _threads(p)
    p.set_defaults(run=_verify)

    p = verbs.add_parser("bench", help="measure training or translation speed (one JSON line)")
    kinds = p.add_subparsers(title="what", metavar="WHAT")
    b = kinds.add_parser("train", help="steady-state training throughput of a recipe")
    b.add_argument("recipe", metavar="RECIPE")
    b.add_argument("--steps", type=_positive, default=100, help="steps per round (default 100)")
    b.add_argument("--warmup", type=int, default=20, help="steps before timing (default 20)")
    b.add_argument("--rounds", type=_positive, default=3, help="timed rounds (default 3)")
    b.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE")
    _precision(b, "train", several=True)
    _threads(b)
    b.set_defaults(run=_bench_train)
    b = kinds.add_parser("profile", help="where training steps and a search spend their time "
                         "(TensorFlow's profiler, grouped by the model's parts)")
    b.add_argument("recipe", metavar="RECIPE")
    b.add_argument("--steps", type=_positive, default=10, help="profiled steps (default 10)")
    b.add_argument("--warmup", type=_positive, default=5, help="steps before (default 5)")
    b.add_argument("--model", metavar="DIR", help="a trained model folder to profile the search "
                   "of (default: the recipe's model after the steps)")
    b.add_argument("--sentences", type=_positive, default=64,
                   help="dev sources translated (default 64)")
    b.add_argument("--beam-size", type=_positive, help="default: the recipe's (or the model's)")
    b.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE")
    _threads(b)
    b.set_defaults(run=_bench_profile)
    b = kinds.add_parser("translate", help="translation speed of a model on a file")
    _model(b)
    b.add_argument("-i", "--input", required=True, help="source file")
    _search(b)
    _precision(b, "decode", several=True)
    b.add_argument("--rounds", type=_positive, default=3,
                   help="passes over the file; the first (tracing) is reported apart")
    _threads(b)
    b.set_defaults(run=_bench_translate)
    b = kinds.add_parser("export", help="translation speed through a SavedModel of `nmt export`")
    b.add_argument("export_dir", metavar="EXPORT_DIR")
    b.add_argument("-i", "--input", required=True, help="source file")
    b.add_argument("--rounds", type=_positive, default=3,
                   help="passes over the file; the first (which warms up) is reported apart")
    _threads(b)
    b.set_defaults(run=_bench_export)

    b = kinds.add_parser("serve", help="throughput and latency of nmt serve under concurrent "
                         "clients, against translating the file; memory over many requests")
    _model(b)
    b.add_argument("-i", "--input", required=True, help="source file: one sentence per request")
    _search(b)
    b.add_argument("--clients", type=_beam_list, default=(1, 8, 32), metavar="N,N,...",
                   help="concurrent clients of each round (default 1,8,32)")
    b.add_argument("--requests", type=_non_negative, default=20000,
                   help="requests sent to measure the server's memory (default 20000; 0: skip)")
    b.add_argument("--max-seconds", type=_positive, default=600,
                   help="time limit of the memory measurement (default 600)")
    b.add_argument("--rounds", type=_positive, default=3,
                   help="passes over the file, alternating with passes through the server "
                   "(default 3)")
    _threads(b)
    b.set_defaults(run=_bench_serve)

    b = kinds.add_parser("matmul", help="tf.matmul GFLOP/s in float32 and bfloat16 (what "
                         "this CPU's bfloat16 instructions give)")
    _threads(b)
    b.set_defaults(run=_bench_matmul)
    return parser


def _model(p):
    p.add_argument("--model", required=True, action="append", metavar="DIR",
                   help="run directory of `nmt train` or model folder of `nmt average`; repeat "
                   "it for an ensemble (log-probs averaged; same target vocabulary)")


def _mirror(p, flag: str, name: str, help: str | None = None, **kwargs):
    """A flag that overrides the recipe option `name` for one command: its help (unless the
    command counts in other units) and its choices are the option's."""
    found = options.get(name)
    p.add_argument(flag, choices=found.choices,
                   help=f"{help or found.help} (default: the recipe's {name})", **kwargs)


def _search(p):
    _mirror(p, "--beam-size", "decode.beam_size", type=_positive)
    _score_setting(p)
    _mirror(p, "--batch-size", "decode.batch_size", type=_positive)


def _score_setting(p):
    _mirror(p, "--alpha", "decode.alpha", type=_alpha)
    _mirror(p, "--length-penalty", "decode.length_penalty")


def _precision(p, section: str, several: bool = False):
    name = f"{section}.precision"
    if several:
        names = options.get(name).choices
        p.add_argument("--precision", type=lambda text: _choice_list(text, names),
                       help=f"{', '.join(names)}, or several comma-separated: measured in "
                       f"alternating rounds of one process, one JSON line each (default: the "
                       f"recipe's {name})")
    else:
        _mirror(p, "--precision", name)


def _choice_list(text: str, names: tuple) -> tuple:
    chosen = tuple(name.strip() for name in text.split(","))
    unknown = [name for name in chosen if name not in names]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(names)}, got {text!r}")
    return tuple(dict.fromkeys(chosen))


def _threads(p):
    p.add_argument("--threads", type=_positive,
                   help="TensorFlow threads (default: all cores)")


def _positive(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def _port(text: str) -> int:
    value = _integer(text, 1, "a port from 1 to 65535")
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    return _integer(text, 0, "a non-negative integer")


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _integer(text: str, lowest: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _beam_list(text: str) -> tuple:
    return tuple(_positive(part) for part in text.split(","))


def _alpha_list(text: str) -> tuple:
    return tuple(_alpha(part) for part in text.split(","))


def _penalty_list(text: str) -> tuple:
    kinds = tuple(text.split(","))
    for kind in kinds:
        if kind not in penalties.NAMES:
            raise argparse.ArgumentTypeError(f"unknown length penalty {kind!r}; expected "
                                             f"{', '.join(penalties.NAMES)}")
    return kinds


# ---- verbs --------------------------------------------------------------------------------------

def _train(args) -> int:
    from nmt.training.train import train
    # The flag is the recipe key (quoted: a folder named "1" or "yes" stays a string).
    overrides = args.overrides + ([f"train.init_from={json.dumps(args.init_from)}"]
                                  if args.init_from else [])
    result = train(args.recipe, args.run_dir, overrides, threads=args.threads)
    print(f"{result.run_dir}: {result.epochs} epochs, best dev BLEU {result.best_bleu:.2f}")
    return 0


def _prepare(args) -> int:
    from nmt.config import recipes
    from nmt.storage import prepared
    from nmt.training import initialization
    from nmt.training.train import log_progress_to

    log_progress_to(None)
    recipe = initialization.with_absolute_paths(recipes.load_recipe(args.recipe, args.overrides))
    recipe, tokenizers = initialization.borrowed_vocabularies(recipe)
    data = prepared.prepare_data(recipe, args.out, args.jobs, tokenizers)
    print(f"{data.root}: {data.info['kept']} pairs in {len(data.shard_paths)} shards; train "
          f"with --set data.prepared={data.root}")
    return 0


def _translate(args) -> int:
    from nmt.files import textio
    textio.check_readable(args.input)
    if args.resume:
        from nmt.translation import resume
        resume.check_paths(args.input, args.output)
    if args.output not in (None, "-"):
        textio.check_writable(args.output)
    if args.alignments and args.nbest > 1:
        raise NmtError("--alignments needs one translation per line (--nbest 1)")
    from nmt.system import runtime
    runtime.import_tensorflow(args.threads)
    from nmt.translation.translate import translate_file
    translator = _translator(args)
    if args.nbest > translator.decode.beam_size:
        raise NmtError(f"--nbest {args.nbest} is larger than the beam size "
                       f"{translator.decode.beam_size}")
    translate_file(translator, args.input, args.output, args.nbest, args.scores, args.alignments,
                   args.resume)
    return 0


def _translator(args, precision: str | None = None):
    from nmt.translation.translate import Translator
    return Translator(args.model, beam_size=args.beam_size, alpha=args.alpha,
                      length_penalty=args.length_penalty, batch_size=args.batch_size,
                      precision=precision or args.precision)


def _serve(args) -> int:
    from nmt.serving import server
    from nmt.storage import modeldir
    for folder in args.model:
        modeldir.read_description(folder)  # not a model folder: one line, before listening
    settings = server.Settings(
        models=tuple(args.model), host=args.host, port=args.port, threads=args.threads,
        token=server.read_token(args.token_file),
        decode={k: v for k, v in (("beam_size", args.beam_size), ("alpha", args.alpha),
                                  ("length_penalty", args.length_penalty),
                                  ("batch_size", args.batch_size), ("precision", args.precision))
                if v is not None},
        limits=Limits(args.max_lines, args.max_line_chars), max_body=args.max_body_kb * 1024,
        batch_wait=args.batch_wait_ms / 1000, max_queue=args.max_queue, timeout=args.timeout)
    code = server.serve(settings)
    gc.freeze()  # exit at once (see main): the collector would walk every TensorFlow object
    return code


def _score(args) -> int:
    from nmt.files import textio
    textio.check_readable(args.src)
    textio.check_readable(args.tgt)
    if args.output not in (None, "-"):
        textio.check_writable(args.output)
    from nmt.system import runtime
    runtime.import_tensorflow(args.threads)
    from nmt.translation.scoring import score_files
    # Scores are compared with one another: float32, whatever the recipe translates in.
    score_files(_translator(args, "float32"), args.src, args.tgt, args.output, args.per_token)
    return 0


def _average(args) -> int:
    from nmt.translation import averaging
    averaging.check_output(args.run_dir, args.best, args.last, args.output)
    from nmt.system import runtime
    runtime.import_tensorflow(1)
    from nmt.translation.averaging import average_run
    print(average_run(args.run_dir, args.best, args.last, args.output))
    return 0


def _tune(args) -> int:
    from pathlib import Path

    from nmt.files import textio
    from nmt.translation import tuning
    textio.check_readable(args.src)
    textio.check_readable(args.ref)
    out = Path(args.out or Path(args.model) / f"tune-{Path(args.src).name}")
    if out.exists() and not out.is_dir():
        raise NmtError(f"{out}: exists and is not a folder; --out takes a folder")
    tuning.check_outputs(args.model, out, args.write)  # before the model loads and the grid runs
    from nmt.system import runtime
    runtime.import_tensorflow(args.threads)
    from nmt.config import options
    from nmt.translation.translate import Translator
    translator = Translator(args.model, batch_size=args.batch_size)
    grid = translator.recipe.eval
    points, chosen, signature = tuning.tune(
        translator, args.src, args.ref,
        args.beams or grid.tune_beams or options.EvalConfig().tune_beams,
        args.alphas or grid.tune_alphas, args.length_penalties or grid.tune_length_penalties,
        args.tokenize or grid.tokenize, out, args.write)
    print(tuning.table(points, chosen))
    print(f"best: beam {chosen.beam_size}, alpha {chosen.alpha:g}, {chosen.length_penalty}: "
          f"dev BLEU {chosen.bleu:.2f} ({signature})"
          + (f"; written to {args.model}/recipe.yaml" if args.write else ""))
    print(f"table and heatmap: {out}")
    return 0


def _bleu(args) -> int:
    from nmt.evaluation import metrics
    from nmt.files import textio
    references = list(textio.read_lines(args.reference, allow_blank=True, allow_tab=True))
    handle, name = textio.open_input(args.input)
    hypotheses = list(textio.validate_lines(handle, name, allow_blank=True, allow_tab=True))
    metrics.check_lengths(hypotheses, references, name, args.reference)
    for score in metrics.corpus_scores(hypotheses, references, args.tokenize):
        print(f"{score.text}\n  signature: {score.signature}")
    return 0


def _evaluate(args) -> int:
    from pathlib import Path

    from nmt.files import textio
    from nmt.system import runtime
    textio.check_readable(args.src)
    textio.check_readable(args.ref)
    out = Path(args.out or Path(args.model[0]) / f"report-{Path(args.src).name}")
    textio.check_writable(out, folder=True)  # before TensorFlow starts and the model loads
    runtime.import_tensorflow(args.threads)
    from nmt.evaluation import report
    report.check_report_folder(out)  # and it holds no file of the user's
    translator = _translator(args)
    result = report.run_evaluation(
        translator, args.src, args.ref, out,
        translator.recipe.eval.beam_sweep if args.beams is None else args.beams,
        args.tokenize or translator.recipe.eval.tokenize, args.heatmaps, args.show)
    print(report.summary(result))
    print(f"report: {out / 'report.md'}")
    return 0


def _plot(args) -> int:
    from nmt.evaluation import curves, plotting
    from nmt.files import textio
    textio.check_writable(args.output)
    drawn = [curves.run_curve(run) for run in args.runs] + [curves.peer_curve(p) for p in args.peer]
    plotting.learning_curves(drawn, args.output)
    print(f"{args.output}: {len(drawn)} curves")
    return 0


def _embeddings(args) -> int:
    if not args.nearest and not args.plot:
        raise NmtError("nothing to do: give --nearest WORD, --plot FILE.png or both")
    if args.plot:
        from nmt.files import textio
        textio.check_writable(args.plot)
    from nmt.system import runtime
    runtime.import_tensorflow(args.threads)
    from nmt.evaluation import plotting
    from nmt.translation import embeddings
    found = embeddings.load_embeddings(args.model, args.side)
    if args.nearest:
        for word, similarity in embeddings.nearest(found, args.nearest, args.k):
            print(f"{word}\t{similarity:.4f}")
    if args.plot:
        if not embeddings.plot_map(found, args.words, args.plot):
            print(f"nmt: warning: no CJK font installed: labels it cannot draw show their rank; "
                  f"{plotting.INSTALL_HINT}", file=sys.stderr)
        print(f"map of {min(args.words, len(found.words))} words: {args.plot}", file=sys.stderr)
    return 0


def _export(args) -> int:
    from nmt.files import textio
    textio.check_folder_writable(args.out)  # before TensorFlow starts and the model loads
    from nmt.system import runtime
    runtime.import_tensorflow(args.threads)
    from nmt.translation import export
    export.check_output(args.out)
    result = export.export(_translator(args), args.out, args.nbest)
    print(export.describe_signatures(result.path))
    print(f"\nwritten to {result.path}:")
    for name, size in result.files:
        print(f"  {size:>12,}  {name}")
    print(f"  {sum(size for _, size in result.files):>12,}  bytes in all")
    return 0


def _verify(args) -> int:
    from pathlib import Path

    from nmt.errors import ModelDirError
    from nmt.storage import manifest, modeldir
    folder = Path(args.model)
    if not folder.is_dir():
        raise ModelDirError("no such folder", str(folder))
    count = manifest.check(folder, hashes=True)
    found = (f"{count} files match {manifest.NAME} (sizes and sha256)" if count is not None
             else f"no {manifest.NAME} (written before nmt wrote manifests): files not hashed")
    if (folder / "saved_model.pb").is_file():
        print(f"{folder}: {found}")
        return 0
    from nmt.system import runtime
    runtime.import_tensorflow(args.threads)
    for weights in ("best", "last") if modeldir.ModelDir(folder).last.is_file() else ("best",):
        modeldir.load_model(folder, weights)
    print(f"{folder}: {found}; the weights load and are finite")
    return 0


def _bench_train(args) -> int:
    from nmt import bench
    for result in bench.bench_train(args.recipe, args.steps, args.warmup, args.rounds,
                                    args.threads, args.overrides, args.precision,
                                    started=STARTED):
        bench.print_json(result)
    return 0


def _bench_profile(args) -> int:
    from nmt import bench
    for result in bench.bench_profile(args.recipe, args.steps, args.warmup, args.threads,
                                      args.overrides, args.model, args.sentences,
                                      args.beam_size):
        bench.print_json(result)
    return 0


def _bench_matmul(args) -> int:
    from nmt import bench
    for result in bench.bench_matmul(threads=args.threads):
        bench.print_json(result)
    return 0


def _bench_export(args) -> int:
    from nmt import bench
    bench.print_json(bench.bench_export(args.export_dir, args.input, args.rounds, args.threads,
                                        started=STARTED))
    return 0


def _bench_serve(args) -> int:
    from nmt import bench
    for result in bench.bench_serve(args.model, args.input, args.clients, args.requests,
                                    args.max_seconds, args.threads,
                                    {"beam_size": args.beam_size, "alpha": args.alpha,
                                     "length_penalty": args.length_penalty,
                                     "batch_size": args.batch_size}, args.rounds):
        bench.print_json(result)
    return 0


def _bench_translate(args) -> int:
    from nmt import bench
    for result in bench.bench_translate(args.model, args.input, args.beam_size, args.alpha,
                                        args.length_penalty, args.batch_size, args.rounds,
                                        args.threads, args.precision, started=STARTED):
        bench.print_json(result)
    return 0
