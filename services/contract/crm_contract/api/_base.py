"""The contract servicers' base: crm_shared's ServicerBase with `_app` typed as ContractApp."""

from __future__ import annotations

from crm_contract.app import ContractApp
from crm_shared.grpc.servicer import ServicerBase


class ContractServicerBase(ServicerBase):
    _app: ContractApp
