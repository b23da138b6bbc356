"""Whole-kernel forms of an export's signatures, for a server on one thread.

An export stores the kernels that samplers multiply by column blocks as their
blocks (`zoo.layers._loop.StoredColumnBlocks`): on two or more cores the
executor runs a step's blocks side by side. On one core each block is one more
op a step waits on, and whole kernels are faster. A SavedModel cannot tell how
many threads run it, so both are written: the signatures, with the blocks, which
stock TF Serving runs; and beside them, as functions of the saved module that
are not signatures (TF Serving never sees them), each signature's whole-kernel
form `form(kernels, inputs)`, with the blocks of each kernel to join into it.

The embedded server joins the blocks once when it loads a version and, on one
thread (one intra-op and one inter-op thread), runs the forms in place of the
signatures (`serving.servable`); they give the same outputs, bit for bit, which
the export checks on every warmup request and the server again when it loads.
"""

import numpy as np
import tensorflow as tf

__all__ = ["FORMS", "attach_forms", "differing_output", "loaded_forms", "whole_kernels"]

FORMS = "whole_kernel_forms"  # the saved module's dict of forms, by signature name
_BLOCKS = "whole_kernel_blocks"  # the saved module's list of each kernel's block variables


def attach_forms(module, blocks, endpoints):
    """Adds to `module` a whole-kernel form of every endpoint, when `blocks` (`StoredColumnBlocks`) stores any.

    Returns:
        signature name -> its form, a `tf.function(kernels, inputs)`; empty when no kernel is stored as blocks.
    """
    if not blocks.variables:
        return {}
    kernel_specs = blocks.kernel_specs()
    forms = {
        name: tf.function(
            blocks.whole_kernel_form(function),
            input_signature=[kernel_specs, {spec.name: spec for spec in signature}],
            autograph=False,
        )
        for name, (function, signature) in endpoints.items()
    }
    for form in forms.values():
        form.get_concrete_function()  # traced here, once each: a call that traces counts toward TF's retracing warning
    setattr(module, _BLOCKS, blocks.kernel_blocks)
    setattr(module, FORMS, forms)
    return forms


def whole_kernels(kernel_blocks):
    """Each kernel joined from its blocks (variables, saved or restored), once."""
    return [tf.concat([block.read_value() for block in blocks], axis=1) for blocks in kernel_blocks]


def loaded_forms(loaded):
    """signature name -> a callable of the inputs as keyword tensors that returns the signature's outputs, for
    every whole-kernel form a loaded SavedModel (`tf.saved_model.load`) carries; empty without any."""
    forms = getattr(loaded, FORMS, None)
    if not forms:
        return {}
    kernels = whole_kernels(getattr(loaded, _BLOCKS))

    def bind(form):
        # Its one concrete function, called directly: the restored `tf.function` would look up its traces at
        # every call, 0.7 ms of a short streaming call's 3 on one thread (a session probe).
        concrete = form.get_concrete_function()
        return lambda **inputs: concrete(kernels, inputs)

    return {name: bind(form) for name, form in forms.items()}


def differing_output(expected, got):
    """The name of the first output of `expected` whose value in `got` differs in dtype, shape or any bit;
    None when all are the same (outputs: name -> tensor or array)."""
    for name, tensor in expected.items():
        want, have = np.asarray(tensor), np.asarray(got.get(name))
        if want.dtype != have.dtype or want.shape != have.shape:
            return name
        same = want.tolist() == have.tolist() if want.dtype == object else want.tobytes() == have.tobytes()
        if not same:
            return name
    return None
