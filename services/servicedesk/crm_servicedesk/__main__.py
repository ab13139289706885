"""python -m crm_servicedesk: run the servicedesk until SIGTERM."""

from crm_servicedesk.bootstrap import build
from crm_servicedesk.config import ServicedeskSettings
from crm_shared.runtime import run_service


def main() -> None:
    run_service(ServicedeskSettings(), build)


if __name__ == "__main__":
    main()
