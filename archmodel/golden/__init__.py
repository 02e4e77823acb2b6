"""Integer golden models of the digital periphery (the RTL matches these bit for bit).

One module per RTL block, mirroring ``rtl/``: :mod:`~archmodel.golden.tile_controller`
(sections 1-3), :mod:`~archmodel.golden.affine` (4-5) with the offline
:mod:`~archmodel.golden.coefficients` (5), :mod:`~archmodel.golden.digital` (6-7).
This package re-exports nothing; import from the module that defines a name.

Everything after the ADC and before the DAC is integer and deterministic (see
docs/design.md, "Data path of one analog layer"). Each digital block has one
function here; the Amaranth RTL and its cocotb/Amaranth-simulation tests
compare against them bit for bit. Rounding and saturation come from
:mod:`archmodel.fixedpoint` (``round_shift``: round half toward +infinity;
``saturate``: clip to the signed range) and are not redefined here.

Activations are signed int8 everywhere (``ACT_BITS = 8``). All functions take
numpy integer arrays / Python ints / lists, compute in ``numpy.int64``, never
use floating point internally (except the offline coefficient helpers of
section 5, which produce the integers), and validate their inputs:
``ValueError`` names the argument, the bad value and the allowed range.

Contract, in data-path order
----------------------------
1. **Tile controller, int8 -> DAC code** (:func:`dac_codes`)::

       code = x                                               if dac_bits == 8
       code = saturate(round_shift(x, 8 - dac_bits), dac_bits) otherwise

   ``dac_bits`` in [2, 8]. Example at 4 bits: -128 -> -8, 127 ->
   round_shift(127, 4) = 8 -> saturates to 7.

2. **Array-port beats** (:func:`dac_beats`, :func:`adc_beats`, :func:`unbeat`):
   the codes of one row block (DAC) or of one array's columns (ADC) travel in
   beats of ``rows_per_beat`` / ``cols_per_beat`` lanes; element ``i`` goes to
   beat ``i // lanes``, lane ``i % lanes``; the last beat is zero-padded
   (a zero DAC code drives no current). ``n_beats = ceil(n / lanes)``;
   ``last`` is asserted on beat ``n_beats - 1``.

3. **Block sequencing of one layer on one tile** (:func:`tile_schedule`):
   the weight matrix (K rows x N columns, see :func:`weight_matrix`) is cut
   into ``n_rb = ceil(K / array_rows)`` row blocks and
   ``n_cb = ceil(N / array_cols)`` column blocks; block ``(rb, cb)`` holds rows
   ``rb*array_rows ...`` and columns ``cb*array_cols ...`` and lives in array
   ``array_index = cb*n_rb + rb``. THE order the RTL follows for one input
   vector is column-block major, row-block minor::

       for cb in range(n_cb):
           for rb in range(n_rb):
               MVM on array cb*n_rb + rb with the DAC codes of row block rb
               accumulate its ADC codes into the partial sums of column block cb
           emit the outputs of column block cb, columns in increasing order

4. **Partial-sum accumulation** (:func:`accumulate_partial_sums`): exact
   integer sum of the ADC codes over the row blocks, in row-block order. The
   accumulator width ``acc_bits`` must satisfy
   ``n_rb * 2**(adc_bits-1) <= 2**(acc_bits-1) - 1`` (checked up front), so
   overflow is impossible and no saturation logic exists in hardware.

5. **Affine / normalization unit** (:func:`affine_requantize`), per column j::

       y   = p_j * scale_j + offset_j       exact; p: acc_bits, scale: scale_bits,
                                            offset: offset_bits (all signed)
       y   = max(y, 0)                       if relu
       out = saturate(round_shift(y, shift), out_bits)      out_bits = 8

   ``shift`` (one per layer) is the number of fractional bits of scale and
   offset. Coefficients come from :func:`quantize_affine` (largest shift at
   which neither scale nor offset saturates, clamped to ``[0, max_shift]``;
   normally set by ``max|multiplier|``), fed by
   :func:`analog_affine_multiplier` / :func:`digital_affine_multiplier` and
   :func:`folded_offset` (conductance scale, DAC/ADC LSBs, GDC alpha, folded
   batch norm, bias, output scale).

6. **Digital datapath** (layers kept digital): int8 x int8 -> exact int
   products and sums (:func:`digital_conv2d`, :func:`digital_linear`), then the
   same affine unit. The im2col order (:func:`im2col`) is
   ``row = (c*kh + i)*kw + j`` and ``column = oh*W_out + ow``, i.e. the weight
   matrix is ``w.reshape(C_out, -1).T`` of the OIHW (PyTorch/ONNX) kernel.

7. **MAC schedule of the digital datapath** (:func:`digital_datapath_order`):
   the MAC array holds ``mac_lanes`` output channels in parallel; for each
   output pixel (im2col column, in increasing order), for each channel group
   ``[g*mac_lanes, (g+1)*mac_lanes)`` in increasing order, it runs one cycle
   per term ``k = 0 .. K-1`` (im2col row order) and then emits that group's
   channels in increasing channel order. Outputs therefore leave pixel-major,
   channel-minor.

Sources: the data path and the PCM conductance mapping follow docs/design.md
(after Joshi et al., Nat. Commun. 11, 2473, 2020, and IBM HERMES, Le Gallo et
al., Nat. Electron. 2023); the bit-level rounding/ordering choices are the
project's own ("assumed", decided by the team lead).
"""
