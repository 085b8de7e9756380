"""A griffe extension that renders Keras-style docstring examples.

Keras writes examples as doctest lines directly under `Example:`, not
indented as a Google-style section. Without help, MkDocs reads `>>>` as a
quote and `['a']` outputs as links. This wraps each run of doctest lines
(prompts and their outputs, up to a blank line) in a `pycon` code fence.
"""

import griffe


def fence_doctests(text):
    lines = text.splitlines()
    fenced = []
    in_block = False
    for line in lines:
        starts_example = line.lstrip().startswith(">>>")
        if starts_example and not in_block:
            fenced.append("```pycon")
            in_block = True
        elif in_block and not line.strip():
            fenced.append("```")
            in_block = False
        fenced.append(line)
    if in_block:
        fenced.append("```")
    return "\n".join(fenced)


class KerasDocstrings(griffe.Extension):
    def on_instance(self, *, node, obj, agent, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
