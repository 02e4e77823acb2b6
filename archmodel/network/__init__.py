"""Network IR: the layer DAG both the mapper and the accuracy evaluator consume.

Modules (import from the one that defines a name; this package re-exports nothing):

- :mod:`~archmodel.network.schema` -- ops, the attribute schema, :class:`NetworkError`;
- :mod:`~archmodel.network.ir` -- :class:`Layer`, :class:`Network`, parameter checks,
  :func:`resolve_digital_layers`;
- :mod:`~archmodel.network.shapes` -- shape inference;
- :mod:`~archmodel.network.builder` -- :class:`NetworkBuilder`;
- :mod:`~archmodel.network.windows` -- im2col and strided windows;
- :mod:`~archmodel.network.forward` -- float32 reference forward pass, random parameters;
- :mod:`~archmodel.network.yaml_io` -- YAML layer lists (load and dump).
"""
