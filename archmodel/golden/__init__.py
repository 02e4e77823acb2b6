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

Contract, in data-path order (each section's text and equations live in the
module that implements it, so there is one copy):

1. int8 -> DAC code; 2. array-port beats; 3. block sequencing of one layer on
   one tile -- :mod:`archmodel.golden.tile_controller`.
4. partial-sum accumulation; 5. affine / normalization unit --
   :mod:`archmodel.golden.affine`, with the offline coefficient arithmetic in
   :mod:`archmodel.golden.coefficients`.
6. digital datapath (layers kept digital); 7. its MAC schedule --
   :mod:`archmodel.golden.digital`.

Sources: the data path and the PCM conductance mapping follow docs/design.md
(after Joshi et al., Nat. Commun. 11, 2473, 2020, and IBM HERMES, Le Gallo et
al., Nat. Electron. 2023); the bit-level rounding/ordering choices are the
project's own ("assumed", decided by the team lead).
"""
