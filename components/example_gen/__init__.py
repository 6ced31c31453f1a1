"""CsvExampleGen for the fraud data: plain or gzip CSV, the feature contract's types, and time-ordered splits.

TFX's stock CsvExampleGen infers each column's type from the values it sees, so a column that happens to hold only
whole numbers (`Time` always does) becomes INT and then disagrees with the schema. This one types the columns by the
feature contract instead (components/lib/csv_contract.py): the raw features are floats and the label an integer. A
column whose values do not all parse as its contract type is written as bytes, so the ExampleValidator reports it
against the schema rather than the reader crashing.

The split scheme comes from `custom_config` (`{"split": "time"|"random"}`); the shares of the splits come from the
hash buckets of `output_config` in both schemes. `random` is TFX's hash split; `time` orders the rows by `Time` and
cuts at its quantiles, so every later split holds only later transactions (time_split.py).

- component.py: the component (with TFX's driver for local runs, without it for Kubeflow and Vertex);
- executor.py: the executor, which reads with the fast reader and starts again with the careful one when needed;
- records.py: CSV files to serialized tf.Examples in Beam, both ways;
- inputs.py: which files and spans a run reads, and what it records of them on its Examples artifact;
- time_split.py: the cuts of the time split.
"""
