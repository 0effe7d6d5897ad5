"""Environment -> group -> agent navigation, with each group's status and redundancy badge.

Agents are added to a group's branch when it is opened, so a fleet of thousands of agents
costs a node per group, and only labels that changed are set again.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tui import look
from tui.model import FleetModel

ROOT = ""  # node data of the root: the whole fleet


class FleetTree(Tree[str]):
    """Node data is the scope it stands for: "", "ENV", "ENV/GROUP" or an agent id."""

    def __init__(self, model: FleetModel, **kwargs) -> None:
        super().__init__("fleet", data=ROOT, **kwargs)
        self.model = model
        self.show_root = True
        self.guide_depth = 2
        self._topology = -1
        self._version = -1
        self._groups: dict[str, TreeNode[str]] = {}
        self._envs: dict[str, TreeNode[str]] = {}
        self._labels: dict[str, object] = {}  # what each node's label shows now

    def update_fleet(self) -> None:
        model = self.model
        if model.topology_version != self._topology:
            self._rebuild()
        elif model.version == self._version:
            return
        self._version = model.version
        for env, node in self._envs.items():
            status = model.env_status(env)
            if self._labels.get(env) != status:
                self._labels[env] = status
                symbol, _word, style = look.group_look(status)
                node.set_label(Text.assemble((symbol, style), f" {env}"))
        chaos_groups = model.chaos.groups()
        for gid, node in self._groups.items():
            group = model.groups[gid]
            key = (group.status, group.redundancy, len(group.findings), gid in chaos_groups)
            if self._labels.get(gid) != key:
                self._labels[gid] = key
                node.set_label(self._group_label(gid, gid in chaos_groups))
            if node.is_expanded:
                self._update_agents(node)

    def _rebuild(self) -> None:
        self._topology = self.model.topology_version
        self._version = -1
        self._labels.clear()
        self.clear()
        self.root.expand()
        self._envs, self._groups = {}, {}
        for env in self.model.environments:
            self._envs[env] = self.root.add(env, data=env, expand=True)
        for gid, group in self.model.groups.items():
            parent = self._envs.get(group.env) or self.root
            node = parent.add(group.name, data=gid, allow_expand=bool(group.agents))
            self._groups[gid] = node

    def _group_label(self, gid: str, under_chaos: bool) -> Text:
        group = self.model.groups[gid]
        symbol, _word, style = look.group_look(group.status)
        label = Text.assemble(
            (symbol, style),
            f" {group.name} ",
            look.redundancy_badge(group.redundancy, group.status),
        )
        if group.findings:
            label.append(f" ⚑{len(group.findings)}", style="yellow")  # API findings, by check
        if under_chaos:
            label.append(f" {look.FAULT_SYMBOL}chaos", style=look.FAULT_STYLE)
        return label

    def _update_agents(self, node: TreeNode[str]) -> None:
        group = self.model.groups.get(node.data or "")
        if group is None:
            return
        if not node.children:
            for aid in group.agents:
                node.add_leaf(aid.rsplit("/", 1)[-1], data=aid)
        for child in node.children:
            row = self.model.agents.get(child.data or "")
            # Setting a label redraws its line: only when the state or the faults changed.
            if row is not None and self._labels.get(row.id) != (row.state, row.faults):
                self._labels[row.id] = (row.state, row.faults)
                symbol, _word, style = look.agent_look(row.state)
                label = Text.assemble((symbol, style), f" {row.name}")
                if row.faults:
                    label.append(f" {look.fault_mark(row.faults)}", style=look.FAULT_STYLE)
                child.set_label(label)

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[str]) -> None:
        if event.node.data in self._groups:
            self._update_agents(event.node)
