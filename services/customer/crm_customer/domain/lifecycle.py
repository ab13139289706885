"""Lifecycle stage rules: prospect → active → loyal → at_risk → churned, moved by what happens.

Pure functions; the use cases that observe deals, purchases and inactivity call
them and record the change (CustomerUpdated with changed_fields=["lifecycle_stage"]).
A stage set by hand is simply the current stage: the next rule applies from there.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from crm_customer.domain.model import LifecycleStage

# A customer with no activity (follow-up, deal, purchase) for this long is at risk.
INACTIVITY_AT_RISK = timedelta(days=90)
# Purchases (behaviour events of type purchase) that make a customer loyal.
LOYAL_AFTER_PURCHASES = 3


def after_deal_won(stage: LifecycleStage) -> LifecycleStage:
    """A won opportunity or signed contract: prospects and lapsed customers become active."""
    if stage in (LifecycleStage.PROSPECT, LifecycleStage.AT_RISK, LifecycleStage.CHURNED):
        return LifecycleStage.ACTIVE
    return stage


def after_purchase(stage: LifecycleStage, purchases: int) -> LifecycleStage:
    """The first purchase activates; repeat purchases (LOYAL_AFTER_PURCHASES) make a customer loyal."""
    if purchases >= LOYAL_AFTER_PURCHASES:
        return LifecycleStage.LOYAL
    if purchases >= 1 and stage in (LifecycleStage.PROSPECT, LifecycleStage.AT_RISK, LifecycleStage.CHURNED):
        return LifecycleStage.ACTIVE
    return stage


def after_inactivity(stage: LifecycleStage) -> LifecycleStage:
    """No activity for INACTIVITY_AT_RISK: active and loyal customers are at risk."""
    if stage in (LifecycleStage.ACTIVE, LifecycleStage.LOYAL):
        return LifecycleStage.AT_RISK
    return stage


def inactivity_deadline(last_activity: datetime) -> datetime:
    return last_activity + INACTIVITY_AT_RISK
