"""Pictures, speech and the voice: picture descriptions and text in pictures (vision, ocr), speech to text
(speech, ct2whisper), text to speech (speaker, phonemes, espeak_worker) and the ffmpeg they play and read through."""
