"""What the components share that is not a component: the CSV contract's reader, spans, the rejection rules,
drift readings, tf.Example reading, the serving folder and TFMA's results read back."""
