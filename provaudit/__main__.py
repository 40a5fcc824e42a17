"""``python -m provaudit``: the same CLI as the ``provaudit`` command."""
from provaudit.cli import main

if __name__ == "__main__":
    main(prog_name="provaudit")
