"""Griffe extension for the docs build: the reST bits of our Google-style docstrings as Markdown.

The docstrings follow optax: Google sections, with ``.. math::`` blocks and ``:math:`` /
``:func:`` roles inside. mkdocstrings renders Markdown, so before it parses a docstring this
extension rewrites (in the loaded copy only; the source is untouched):

* ``.. math::`` and its indented block -> a ``$$`` block (rendered by arithmatex + MathJax);
* ``:math:`x``` -> ``\\(x\\)``;
* ``:func:`name``` (and ``:class:``, ``:data:``, ``:mod:``) -> a cross-reference to the
  documented object when the name is one (``jaxloss.name``, or a member of the module the
  docstring is in), else inline code.

Loaded by ``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(func|class|data|mod|meth|attr):`~?([\w.]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(\s*)\.\. math::\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _math_blocks(text: str) -> str:
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        match = _MATH_DIRECTIVE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        prefix, i = match.group(1), i + 1
        block = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(prefix)):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        depth = min(_indent(line) for line in block if line.strip())
        out += [prefix + "$$", *(prefix + line[depth:] for line in block), prefix + "$$", ""]
    return "\n".join(out)


class ReSTRoles(griffe.Extension):
    """Rewrites the docstrings of the loaded package; see the module docstring."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        public = {str(name) for name in pkg.exports or ()}
        seen: set[str] = set()

        def link(module: griffe.Module, match: re.Match) -> str:
            name = match.group(2)
            short = name.rsplit(".", 1)[-1]
            if name.startswith(f"{pkg.name}.") and name in pkg.modules_collection:
                target = name
            elif short in public:
                target = f"{pkg.name}.{short}"
            elif module.is_public and short in module.members and not short.startswith("_"):
                target = f"{module.path}.{short}"
            else:
                return f"`{name}`"
            return f"[`{short}`][{target}]"

        def visit(obj: griffe.Object, module: griffe.Module) -> None:
            if obj.path in seen:
                return
            seen.add(obj.path)
            if obj.docstring is not None:
                text = _math_blocks(obj.docstring.value)
                text = _MATH_ROLE.sub(lambda m: rf"\({m.group(1)}\)", text)
                obj.docstring.value = _ROLE.sub(lambda m: link(module, m), text)
            for member in obj.members.values():
                if not member.is_alias:
                    visit(member, member if member.is_module else module)

        visit(pkg, pkg)
