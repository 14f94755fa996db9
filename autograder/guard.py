"""Keep a student's answer cells from changing what the test cells rely on.

During autograding the student's code and the tests share one kernel, so an answer cell could
monkeypatch ``np.allclose``, ``torch.testing.assert_close``, the course's checks, or register
IPython hooks that rewrite or silence later cells. The grader therefore runs two kinds of extra
cells (they are removed again before the notebook is saved):

* after the read-only setup cells, a *snapshot* cell records the attributes of the modules tests
  use, the setup cells' globals and IPython's hook lists;
* before every test cell, a *restore* cell puts all of them back.

The guard's functions live under a name chosen at random for each grading run. If a student deletes
them anyway, the restore cell fails and the grader zeroes the test cell that follows.
"""

from __future__ import annotations

import secrets

# Modules whose attributes tests rely on; those already imported when the snapshot runs are saved.
GUARDED_MODULES = (
    "builtins",
    "math",
    "numpy",
    "numpy.testing",
    "numpy.linalg",
    "torch",
    "torch.testing",
    "torch.nn",
    "torch.nn.functional",
    "torch.nn.init",
    "autograder.checks",
)
# Classes whose methods tests call on students' results.
GUARDED_CLASSES = (
    ("numpy", "ndarray"),
    ("torch", "Tensor"),
    ("torch.nn", "Module"),
    ("torch.nn", "Linear"),
    ("torch.nn", "MultiheadAttention"),
)

_SNAPSHOT = '''\
def {name}_make():
    import builtins, sys
    modules = {{m: sys.modules[m] for m in {modules!r} if m in sys.modules}}
    saved = {{m: dict(vars(mod)) for m, mod in modules.items()}}
    classes = []
    for module_name, class_name in {classes!r}:
        cls = getattr(modules.get(module_name), class_name, None)
        if isinstance(cls, type):
            classes.append((cls, {{k: v for k, v in vars(cls).items() if not k.startswith("__dict")}}))
    user_ns = get_ipython().user_ns
    setup_globals = {{k: v for k, v in user_ns.items() if not k.startswith("_")}}
    shell = get_ipython()
    hooks = {{event: list(callbacks) for event, callbacks in shell.events.callbacks.items()}}
    transformers = (list(shell.input_transformers_cleanup), list(shell.input_transformers_post),
                    list(shell.ast_transformers))
    trace = sys.gettrace()

    def restore():
        for m, attributes in saved.items():
            namespace = vars(modules[m])
            for key, value in attributes.items():
                if namespace.get(key, restore) is not value:
                    setattr(modules[m], key, value)
        for cls, attributes in classes:
            for key, value in attributes.items():
                if cls.__dict__.get(key, restore) is not value:
                    try:
                        setattr(cls, key, value)
                    except (AttributeError, TypeError):
                        pass
        user_ns.update(setup_globals)
        for event, callbacks in hooks.items():
            shell.events.callbacks[event][:] = callbacks
        shell.input_transformers_cleanup[:] = transformers[0]
        shell.input_transformers_post[:] = transformers[1]
        shell.ast_transformers[:] = transformers[2]
        sys.settrace(trace)
        builtins.__dict__["{name}"] = restore
        user_ns["{name}"] = restore

    return restore

{name} = {name}_make()
del {name}_make
{name}()
'''


class Guard:
    """Source code of the snapshot and restore cells for one grading run."""

    MARKER = "autograder_guard"

    def __init__(self) -> None:
        self.name = f"_guard_{secrets.token_hex(8)}"

    def snapshot_source(self) -> str:
        return _SNAPSHOT.format(name=self.name, modules=GUARDED_MODULES, classes=GUARDED_CLASSES)

    def restore_source(self) -> str:
        return f"{self.name}()"
