import sys

from crm_customer.cli.main import main

sys.exit(main())
