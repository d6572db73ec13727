"""Allow ``python -m rmtension`` (and ``accelerate launch -m rmtension``)."""

from rmtension.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
