"""Build adversarial and mistaken submissions for any exercise, from its release notebook.

The grading corpora (``test_grader_corpus*.py``, ``test_grading_dask.py``) use these so that they hold
whatever tasks an exercise asks: answers come from ``tests/other_solutions/<id>.py`` (its ``CORRECT``
answers and ``WRONG`` mistakes), and code is planted in the first answer cell that defines a function.
"""

from __future__ import annotations

import ast
import copy
import importlib

import nbformat
from conftest import nbgrader_meta


def other_solutions(assignment_id: str):
    """The module ``tests/other_solutions/<id>.py`` (``CORRECT`` and ``WRONG``)."""
    return importlib.import_module(f"other_solutions.{assignment_id}")


def answer_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code" and nbgrader_meta(c).get("solution")]


def defined_names(source: str) -> list[str]:
    """The functions and classes an answer cell defines at top level."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]


def first_function(notebook: nbformat.NotebookNode) -> tuple[int, str]:
    """(index, name) of the first answer cell that defines a function at top level."""
    for index, cell in enumerate(notebook.cells):
        if nbgrader_meta(cell).get("solution"):
            tree = ast.parse(cell.source)
            functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
            if functions:
                return index, functions[0]
    raise LookupError("no answer cell defines a function")


def with_answers(notebook: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of ``notebook`` whose answer cells named in ``answers`` (by grade_id) are replaced."""
    notebook = copy.deepcopy(notebook)
    for cell in answer_cells(notebook):
        if nbgrader_meta(cell)["grade_id"] in answers:
            cell.source = answers[nbgrader_meta(cell)["grade_id"]]
    return notebook


def with_prefix(notebook: nbformat.NotebookNode, code: str) -> nbformat.NotebookNode:
    """A copy of ``notebook`` whose first function-defining answer cell starts with ``code``."""
    notebook = copy.deepcopy(notebook)
    index, _ = first_function(notebook)
    notebook.cells[index].source = code + "\n" + notebook.cells[index].source
    return notebook


def with_suffix(notebook: nbformat.NotebookNode, code: str) -> nbformat.NotebookNode:
    """A copy of ``notebook`` whose first function-defining answer cell ends with ``code``."""
    notebook = copy.deepcopy(notebook)
    index, _ = first_function(notebook)
    notebook.cells[index].source = notebook.cells[index].source + "\n" + code
    return notebook


def warning_on_call(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The first function warns (a library-style UserWarning on stderr) every time it is called."""
    _, name = first_function(notebook)
    return with_suffix(notebook, f'''
import functools as _functools, warnings as _warnings
_quiet_{name} = {name}
@_functools.wraps(_quiet_{name})
def {name}(*args, **kwargs):
    _warnings.warn("this library function is deprecated", UserWarning)
    return _quiet_{name}(*args, **kwargs)
''')


ALWAYS_EQUAL = '''
class AlwaysEqual:
    shape = property(lambda self: self)
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __getattr__(self, name): return self
    def __call__(self, *a, **k): return self
    def __getitem__(self, key): return self
    def __iter__(self): return iter([])
    def __array__(self, *a, **k): raise TypeError("no")
'''


def always_equal(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Every function and class of every answer cell returns an object that claims to equal anything."""
    notebook = copy.deepcopy(notebook)
    cells = answer_cells(notebook)
    for position, cell in enumerate(cells):
        names = defined_names(cell.source)
        cell.source = (ALWAYS_EQUAL if position == 0 else "") + "\n".join(
            f"def {name}(*args, **kwargs):\n    return AlwaysEqual()" for name in names)
    return notebook


FAKE_TENSOR = '''
import torch as _torch
class _Anything(_torch.Tensor):
    def __eq__(self, other): return True
    def allclose(self, *a, **k): return True
def _fake(value):
    if isinstance(value, _torch.Tensor):
        return _torch.zeros_like(value).as_subclass(_Anything)
    if isinstance(value, (tuple, list)):
        return type(value)(_fake(v) for v in value)
    return value
_namespace = dict(globals())
exec({source!r}, _namespace)
_real_{name} = _namespace[{name!r}]
def {name}(*args, **kwargs):
    return _fake(_real_{name}(*args, **kwargs))
'''


def fake_tensors(notebook: nbformat.NotebookNode, correct: dict[str, str]) -> nbformat.NotebookNode:
    """The first function returns tensors of the right shapes and dtypes, all zeros, of a Tensor
    subclass whose ``__eq__`` and ``allclose`` always say yes."""
    notebook = copy.deepcopy(notebook)
    index, name = first_function(notebook)
    source = correct[nbgrader_meta(notebook.cells[index])["grade_id"]]
    notebook.cells[index].source = FAKE_TENSOR.format(source=source, name=name)
    return notebook
