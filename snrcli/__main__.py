"""``python -m snrcli``: the ``snr`` command."""

import sys

try:
    from .launch import main
except KeyboardInterrupt:       # before launch could take over Ctrl-C
    sys.stderr.write("interrupted: stopped before finishing; nothing was written\n")
    sys.exit(130)

if __name__ == "__main__":
    main()
