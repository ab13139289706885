"""python -m crm_reporting: run the reporting service until SIGTERM."""

from crm_reporting.bootstrap import build
from crm_reporting.config import ReportingSettings
from crm_shared.runtime import run_service


def main() -> None:
    run_service(ReportingSettings(), build)


if __name__ == "__main__":
    main()
