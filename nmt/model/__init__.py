"""The translation model: Keras layers that map ids to logits (`seq2seq.Seq2Seq` wires them).

    seq2seq     Seq2Seq(config, src_vocab_size, tgt_vocab_size): encoder + decoder, the
                inference protocol search uses
    encoder     embeddings and stacked bidirectional LSTM/GRU layers; ProjectedLSTM, Keras's LSTM
                with its input side multiplied outside the recurrence
    decoder     the attentional decoder, composed of the parts below: step(), teacher-forced call
    cells       the recurrent step with input feeding, one class per `model.cell` (CELLS); the
                LSTM update the encoder's LSTM shares
    attention   the Attention protocol, one class per `model.attention` (ATTENTIONS)
    bridges     the first decoder state, one class per `model.bridge` (BRIDGES)
    output      the output layer, tied to the target embeddings or not, per `model.tie` (OUTPUTS)
    gradients   DeferredGradient: a weight's gradient taken after a loop, as one product

May import: `nmt.config.options`, Keras and TensorFlow. Knows nothing of files, strings,
training or search.
"""
