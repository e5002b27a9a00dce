"""The ``miex`` command line: a thin click app over ``miex_gen`` and ``recognizers``.

Every module here except ``main`` defines ``COMMANDS`` (a list of click commands/groups);
``cli.main`` discovers them, so adding a command group is adding a file. Modules here import
only click and rich at module level: heavy libraries are imported inside the command body.
"""
