"""`python -m service` runs the `tend` command."""

from service.cli import main

if __name__ == "__main__":
    main()
