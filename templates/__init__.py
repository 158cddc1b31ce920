# Makes the templates folder importable as dynia.templates so importlib.resources finds it.
