"""python -m crm_contract: run the contract service until SIGTERM."""

from crm_contract.bootstrap import build
from crm_contract.config import ContractSettings
from crm_shared.runtime import run_service


def main() -> None:
    run_service(ContractSettings(), build)


if __name__ == "__main__":
    main()
