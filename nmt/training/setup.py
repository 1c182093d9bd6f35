"""What a training builds from its recipe, for `nmt train` and `nmt bench` alike: the compiled
trainer (the one place the model is made for training) and the training dataset."""
from __future__ import annotations

from nmt.config import options
from nmt.data import batching
from nmt.system import precision


def token_budget(train_config: options.TrainConfig) -> int:
    """Target tokens per training batch, or 0 when batches count sentences."""
    return train_config.batch_tokens if train_config.batch_type == "tokens" else 0


def compiled_trainer(recipe: options.Recipe, src_size: int, tgt_size: int):
    """A fresh model wrapped in its training step, with the optimizer of the recipe."""
    from nmt.model.seq2seq import Seq2Seq
    from nmt.training.optimizers import adam
    from nmt.training.train_step import Seq2SeqTrainer

    with precision.dtype_policy(recipe.train.precision):
        model = Seq2Seq(recipe.model, src_size, tgt_size)
        if recipe.model.freeze_embeddings:
            # The sides given vectors; a model started from another keeps all its embeddings.
            frozen = options.SIDES if recipe.train.init_from else recipe.model.pretrained_embeddings
            for side in frozen:
                model.embedding_layer(side).trainable = False
        trainer = Seq2SeqTrainer(model, recipe.train.label_smoothing, token_budget(recipe.train),
                                 recipe.train.accumulate)
        trainer.compile(optimizer=adam(recipe.train, model.trainable_variables))
    return trainer


def training_dataset(recipe: options.Recipe, source, tokenizers, seed: int,
                     replicas: int = 1):
    """(the shuffled, bucketed training batches, the training steps of an epoch or None), as
    the recipe's data and train sections ask, grouped by `train.accumulate` for the training
    step and dealt out to `replicas` (the strategy's replicas in sync; see `grouped`).

    `source`: a `prepared.Prepared` folder of shards (read again each epoch; the dataset repeats
    and an epoch's step count is known, so progress shows an ETA), or a function yielding the
    text pairs of an epoch, encoded with `tokenizers` as they stream (segmentations sampled
    anew each epoch; the length of an epoch unknown). A multi-worker run's data is split among
    the workers by tf.distribute: its epochs end when the data does.
    """
    from nmt.training.train_step import grouped

    accumulate = recipe.train.accumulate
    plan = batching.bucket_plan(recipe.data.max_len, recipe.train.batch_size,
                                token_budget(recipe.train), recipe.train.bucket_width)
    if callable(source):
        pairs = batching.streamed_pairs(source, *tokenizers, max_len=recipe.data.max_len,
                                        shuffle_buffer=recipe.train.shuffle_buffer, seed=seed)
        return grouped(batching.bucketed_batches(pairs, *plan), accumulate, replicas), None
    batches = grouped(batching.bucketed_batches(
        source.dataset(seed, recipe.train.shuffle_buffer), *plan), accumulate, replicas)
    if recipe.train.distribution == "multi_worker":
        return batches, None
    # An epoch's last group may hold fewer than `accumulate` batches.
    return batches.repeat(), -(-source.batches_per_epoch(*plan) // accumulate)


def dev_dataset(recipe: options.Recipe, dev_pairs, src_tokenizer, tgt_tokenizer):
    """The dev pairs in corpus order, batched as training batches are (for the dev perplexity),
    none left out for length."""
    longest = max(len(tgt_tokenizer.encode(t)) for _, t in dev_pairs)
    return batching.training_dataset(lambda: dev_pairs, src_tokenizer, tgt_tokenizer,
                                     batch_size=recipe.train.batch_size, max_len=None,
                                     max_bucket_len=longest)
