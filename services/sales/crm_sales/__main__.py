"""python -m crm_sales: run the sales service until SIGTERM."""

from crm_sales.bootstrap import build
from crm_sales.config import SalesSettings
from crm_shared.runtime import run_service


def main() -> None:
    run_service(SalesSettings(), build)


if __name__ == "__main__":
    main()
