"""The crash watcher: machined's MachineNew/MachineRemoved signals → ContainerCrash events.

machined.py owns the D-Bus subscription, units.py reads unit results, journal.py the last
lines, watcher.py decides, service.py runs the loop; __main__.py only wires them.
"""
