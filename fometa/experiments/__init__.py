"""The paper's Section 6 experiments on Omniglot, each a function returning its records.

* :mod:`fometa.experiments.combinations`: Section 6.2, inner-loop gradient combinations
  (``g1``, sums, averages and last gradients of 2..4 non-overlapping mini-batches);
* :mod:`fometa.experiments.fomaml_tail`: Section 6.3, FOMAML with a shared or a separate final
  mini-batch, and Reptile, across inner iteration counts.

Both meta-train every configuration from the same initialization with :class:`fometa.meta.MetaLearner`,
evaluate it at fixed meta-iterations on the same test tasks (:mod:`fometa.evaluate`), write one
JSON object per line and draw a PNG (:mod:`fometa.experiments.common`).
"""
