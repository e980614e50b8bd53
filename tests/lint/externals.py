"""An import-linter contract: a package may import, besides the standard library and our
own packages, only the third-party packages it lists (import-linter forbids by name; a
contract meant to stay small needs to allow by name)."""

from __future__ import annotations

import sys

import grimp
from importlinter import Contract, ContractCheck, fields, output


class AllowedExternalsContract(Contract):
    """Options: `source_modules` (packages checked, with everything below them) and
    `allowed_externals` (third-party top-level packages they may import directly)."""

    type_name = "allowed_externals"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_externals = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        allowed = {str(name) for name in self.allowed_externals}  # type: ignore[attr-defined]
        ours = {m.split(".")[0] for m in graph.modules if not graph.is_module_squashed(m)}
        illegal: list[tuple[str, str]] = []
        for source in self.source_modules:  # type: ignore[attr-defined]
            checked = {source.name} | graph.find_descendants(source.name)
            for importer in sorted(checked):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    top = imported.split(".")[0]
                    if top in ours or top in sys.stdlib_module_names or top in allowed:
                        continue
                    illegal.append((importer, imported))
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported in check.metadata["illegal"]:
            output.print_error(f"{importer} imports {imported}, which is not allowed here.")
            output.new_line()
