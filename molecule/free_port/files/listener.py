"""A stray TCP listener for the free_port scenario.

Usage: listener.py PORT PIDFILE. Binds 127.0.0.1:PORT, writes its PID to
PIDFILE (so destroy.yml can end exactly this process) and sleeps. Run it
through a symlink to python3 named like the process should look (its comm).
"""

import os
import socket
import sys
import time
from pathlib import Path

port, pidfile = int(sys.argv[1]), Path(sys.argv[2])
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", port))
sock.listen()
pidfile.write_text(str(os.getpid()))
time.sleep(900)
