#!/usr/bin/python3
"""Drags the X pointer as a mouse does, through the X server's XTest
extension: press at (x0, y0), a minimum-jerk movement of dx pixels with a
little vertical drift and a tremor, one motion event every 1000/hz ms on
the wall clock (as a USB mouse polls), release. Chromium receives these
as it receives a real mouse's events on Linux (XInput2), so what slide.js
records of them is what the browser's pipeline does to a real device.

    xdrag.py X0 Y0 DX DURATION_MS HZ SEED [PATH.json]

With PATH.json (a list of [dx, dy] offsets from the press, as a path
library draws them: ghost-cursor's path()), the pointer visits those points
instead, one per motion event, and DURATION_MS is ignored.
"""
import json
import math
import random
import sys
import time

from Xlib import X, display
from Xlib.ext import xtest


def main():
    x0, y0, dx, dur, hz, seed = (float(a) for a in sys.argv[1:7])
    rng = random.Random(int(seed))
    d = display.Display()
    move = lambda x, y: (xtest.fake_input(d, X.MotionNotify, x=int(round(x)), y=int(round(y))), d.flush())
    move(x0, y0)
    time.sleep(0.15)
    xtest.fake_input(d, X.ButtonPress, 1)
    d.flush()
    time.sleep(0.08 + rng.random() * 0.05)
    drift = rng.uniform(-6, 6)
    if len(sys.argv) > 7:
        with open(sys.argv[7]) as f:
            pts = [(x0 + p[0], y0 + p[1]) for p in json.load(f)[1:]]
    else:
        n = int(dur / 1000 * hz)
        pts = []
        for i in range(1, n + 1):
            u = i / n
            s = 10 * u**3 - 15 * u**4 + 6 * u**5
            pts.append((x0 + dx * s + rng.gauss(0, 0.4), y0 + drift * math.sin(math.pi * u) + rng.gauss(0, 0.4)))
    start = time.monotonic()
    period = 1 / hz
    for i, (x, y) in enumerate(pts, 1):
        move(x, y)
        wait = start + i * period - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    time.sleep(0.06)
    xtest.fake_input(d, X.ButtonRelease, 1)
    d.sync()
    # Closing the connection at once sometimes lost the release (Chromium
    # under Xvfb saw no pointerup in about one drag of two); give the
    # server time to deliver it.
    time.sleep(0.2)
    d.close()


if __name__ == "__main__":
    main()
