"""python -m crm_customer: run the customer service until SIGTERM."""

from crm_customer.bootstrap import build
from crm_customer.config import CustomerSettings
from crm_shared.runtime import run_service


def main() -> None:
    run_service(CustomerSettings(), build)


if __name__ == "__main__":
    main()
