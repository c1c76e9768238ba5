"""What the offline provider's handlers delegate to: the code that composes each answer.

One module per thing written: outlines and blueprints for s04 (``outlines``, ``blueprint``,
``blueprint_tools`` with ``tool_names`` and ``tool_phrases``; ``blueprint_repair`` with
``blueprint_draft``, ``blueprint_table_fixes`` and ``blueprint_tool_fixes``), task templates for
s14 (``template``, worded by ``wording`` and framed by ``framing``, and ``template_judge``);
``framing`` and ``manner`` also frame the s17 user simulator's instructions. English shared by all of them
is in :mod:`agentskiller.llm.offline.phrasing`.
"""
