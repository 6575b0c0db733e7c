"""Allow ``python -m incident_runner``."""

from incident_runner.cli import main

if __name__ == "__main__":
    main()
