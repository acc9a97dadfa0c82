"""The recurrent cells: basic RNN, GRU and LSTM, each a module of pure functions.

Letters used in every cell module:

- ``T``   time steps of the sequence, ``m`` examples in the batch,
- ``n_x`` size of the input ``x<t>``, ``n_a`` size of the hidden state ``a<t>``,
- ``G``   number of fused gate blocks (RNN 1, simplified GRU 2, GRU 3, LSTM 4).

Arrays are time-major: a sequence of inputs is ``x`` of shape ``(T, m, n_x)``.

Every cell module offers the same five functions::

    init_params(n_x, n_a, rng, dtype, **opts)            -> params
    forward(x, state, params, **opts)                    -> (a, state_T, cache)
    backward(da, cache, params, **opts)                  -> (dx, dstate_0, grads)
    step(xz_t, state, params, stacked=False, **opts)     -> (a_t, state)
    step_weights(params, **opts)                         -> [W_ax | W_aa] or None

and a sixth, the forward-only inference path::

    infer(x, state, params, **opts)                      -> (a, state_T)

``infer`` computes what ``forward`` computes, the same equations in the same order, but keeps
no cache and allocates nothing inside its time loop: every per-step result goes into a buffer
made once before the loop (``out=``), and the recurrent weights are copied once into the
C-contiguous ``W_aa^T`` that OpenBLAS multiplies fastest (see :func:`transposed`). It takes
``(x, state)`` exactly like ``forward``, so any caller of ``forward`` that needs no gradient
(evaluation, scoring, an encoder over padded sentences) can call it instead.

``forward`` runs the whole sequence and returns every hidden state ``a`` (T, m, n_a), the final
state (to carry into the next window or to keep sampling from) and a cache that the caller
hands back to ``backward``: nothing is kept on a module or an object, so sampling can never
disturb a training step. ``backward`` is backpropagation through time: ``da`` (T, m, n_a) is
the gradient of the loss with respect to every ``a<t>``, and it returns the gradients of the
inputs, of the initial state and of every parameter (same keys as ``params``). ``step`` is
one time step, for sampling; with ``stacked=True`` its ``xz_t`` already holds the recurrent
product as well, both computed as one product ``[x<t>, a<t-1>] @ step_weights(params).T``
(see :func:`stacked_weights`).

The course writes each pre-activation as ``W [a<t-1>, x<t>] + b`` with ``W = [W_aa | W_ax]``.
The ``x`` part does not depend on the recurrence, so it is computed for all T steps in one
matrix product before the time loop (:func:`input_product`); only ``a<t-1> W_aa`` stays inside
it. Likewise the weight gradients are one product over all steps after the backward loop
(:func:`weight_grads`). Same mathematics, far fewer and far larger matrix products.

Inside a cell the G gate blocks are kept gate-major, ``z`` of shape ``(G, T, m, n_a)``: gate k
at step t is the contiguous block ``z[k, t]``. The per-step element-wise work (a dozen ufunc
calls) then runs on contiguous memory, which NumPy does about three times faster than on the
column slices of an ``(m, G n_a)`` row block. Only the recurrent product ``a<t-1> W_aa^T``
still comes out as ``(m, G n_a)``; :func:`add_recurrent` adds it in, and :func:`gate_rows`
turns a step's gradient back into rows for ``dz<t> W_aa``.
"""

from . import gru, lstm, rnn
from .common import input_product, transposed  # noqa: F401  (the helpers other layers use)

CELLS = {"rnn": rnn, "gru": gru, "lstm": lstm}
