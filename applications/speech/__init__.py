"""Speech applications: keyword spotting and speech to text.

- `keyword_spotting`: a Keyword-Transformer-style classifier of short clips
  (FSDD digits, Speech Commands, any folder of class folders of WAV files).
- `speech_to_text`: an attention encoder with a CTC head over characters,
  trained on speech synthesized with espeak-ng (`synthesis`).
- `audio`, `data`: reading WAV files and the data sets.

The command modules (`keyword_spotting_command`, `speech_to_text_command`,
`synthesize_command`) plug these into `keras-attention`.
"""
