"""Analyses that load trained runs and run their models (the router's statistics, the trained update's spectrum),
each writing a JSON file that ``idlora.reports`` draws its figure from."""
