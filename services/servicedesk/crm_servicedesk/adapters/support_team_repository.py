"""Support teams and their members in the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_servicedesk.adapters.ticket_tables import support_teams, team_members
from crm_servicedesk.domain.assignment import AssignmentStrategy, SupportTeam, TeamMember
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted


def _team_values(team: SupportTeam) -> dict[str, Any]:
    return {
        "id": team.id,
        "display_name": team.display_name,
        "strategy": team.strategy.value,
        "last_assignee": team.last_assignee,
        "create_time": team.create_time,
        "update_time": team.update_time,
        "row_version": team.row_version,
    }


def _team_from_row(row: Any, members: list[TeamMember]) -> SupportTeam:
    return SupportTeam(
        id=row["id"],
        display_name=row["display_name"],
        strategy=AssignmentStrategy(row["strategy"]),
        last_assignee=row["last_assignee"],
        members=members,
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


class SupportTeamRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _members(self, team_ids: Sequence[str]) -> dict[str, list[TeamMember]]:
        result: dict[str, list[TeamMember]] = {team_id: [] for team_id in team_ids}
        if not team_ids:
            return result
        query = (
            sa.select(team_members)
            .where(team_members.c.team_id.in_(list(team_ids)))
            .order_by(team_members.c.team_id, team_members.c.position)
        )
        for row in (await self.session.execute(query)).mappings():
            result[row["team_id"]].append(TeamMember(agent=row["agent"], available=row["available"]))
        return result

    async def get(self, team_id: str, lock: bool = False) -> SupportTeam | None:
        query = sa.select(support_teams).where(support_teams.c.id == team_id)
        if lock and self.session.get_bind().dialect.name == "postgresql":
            # Two automatic assignments in one team take turns (each sees the other's turn).
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        if row is None:
            return None
        return _team_from_row(row, (await self._members([team_id]))[team_id])

    async def list(self, *, after: Sequence[Any] | None, limit: int) -> list[SupportTeam]:
        sort = [SortKey(support_teams.c.id, False)]
        query = sa.select(support_teams)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        rows = (await self.session.execute(query.order_by(*keyset_order(sort)).limit(limit))).mappings().all()
        members = await self._members([row["id"] for row in rows])
        return [_team_from_row(row, members[row["id"]]) for row in rows]

    async def _write_members(self, team: SupportTeam) -> None:
        await self.session.execute(sa.delete(team_members).where(team_members.c.team_id == team.id))
        if team.members:
            await self.session.execute(
                sa.insert(team_members),
                [
                    {"team_id": team.id, "agent": m.agent, "position": index, "available": m.available}
                    for index, m in enumerate(team.members)
                ],
            )

    async def add(self, team: SupportTeam) -> None:
        await self.session.execute(sa.insert(support_teams).values(_team_values(team)))
        await self._write_members(team)

    async def save(self, team: SupportTeam, expected_row_version: int) -> None:
        values = _team_values(team)
        del values["id"], values["create_time"]
        result = await self.session.execute(
            sa.update(support_teams)
            .where(support_teams.c.id == team.id, support_teams.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{team.name} was changed concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
                metadata={"resource": team.name},
            )
        await self._write_members(team)

    async def record_turn(self, team_id: str, agent: str) -> None:
        """Remember who got the latest automatic assignment (not a change of the team's settings)."""
        await self.session.execute(
            sa.update(support_teams).where(support_teams.c.id == team_id).values(last_assignee=agent)
        )

    async def remove(self, team_id: str) -> None:
        await self.session.execute(sa.delete(team_members).where(team_members.c.team_id == team_id))
        await self.session.execute(sa.delete(support_teams).where(support_teams.c.id == team_id))
