"""The input kinds besides text (pictures, voice): what each is, how it is named, checked and read into text.

The foundation: a turn's attachments (dialogue.py) and a flow's modalities (flows.py) name these kinds, so
nothing here imports the rest of the package.
"""
