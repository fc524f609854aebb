"""`python -m core.embedded.warehouse --data-dir D --port P`: run the warehouse server."""

from core.embedded.warehouse.server import main

if __name__ == "__main__":
    main()
