"""SubmitContract, ApproveContract, RejectContract, WithdrawContract (mixed into ContractServicer)."""

from __future__ import annotations


class ContractApprovalRpcs:
    pass
