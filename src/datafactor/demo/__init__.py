"""The demo province: a plausible Guangxi data market, with synthetic identifiers, to explore the
platform with. ``province`` holds its parties and users as frozen dataclasses; seeding them into a
database is left to the code that installs a demo.
"""
