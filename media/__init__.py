"""Bridgecast media toolkit (no Airflow): probe and house-profile conformance, normalise, clips and concat, title
cards, recap, photo cleaning, RTMP relay, throttled progress lines, and the Vietnamese words for what went wrong.
ffmpeg runs under our own supervision; Pillow (with pillow-heif for HEIC) handles stills."""
from media.cards import CardStyle, CardText, add_lower_third, check_glyphs, render_card, resolve_font
from media.clips import Chapter, ClipResult, ConcatResult, concat, cut, join_segments
from media.errors import (ClipRangeError, DecompressionBombError, EmptyFileError, FFmpegError, FFmpegTimeout,
                          MediaError, MissingGlyphError, MissingMoovError, NotAnImageError, NotConformantError,
                          NotMediaError, NoVideoError, TeamMessage, TruncatedFileError, UnsupportedCodecError,
                          blames_input, classify_ffmpeg, team_message)
from media.frames import contact_sheet, poster_frame
from media.normalize import NormalizeResult, normalize, remux
from media.photos import PhotoPolicy, PhotoResult, content_hash, process_photo, process_photos, sniff
from media.probe import AudioInfo, Deviation, MediaInfo, VideoInfo, conformance, is_conformant, probe
from media.profile import HOUSE, HouseProfile
from media.progress import ProgressLog
from media.recap import RecapItem, RecapPart, RecapResult, build_recap, vertical_variant
from media.relay import RelayHealth, RelaySupervisor, build_relay_argv
from media.run import Progress, RunResult, run_ffmpeg

__all__ = [
    "HOUSE", "AudioInfo", "CardStyle", "CardText", "Chapter", "ClipRangeError", "ClipResult", "ConcatResult",
    "DecompressionBombError", "Deviation", "EmptyFileError", "FFmpegError", "FFmpegTimeout", "HouseProfile",
    "MediaError", "MediaInfo", "MissingGlyphError", "MissingMoovError", "NoVideoError", "NormalizeResult",
    "NotAnImageError", "NotConformantError", "NotMediaError", "PhotoPolicy", "PhotoResult", "Progress", "ProgressLog",
    "RecapItem", "RecapPart", "RecapResult", "RelayHealth", "RelaySupervisor", "RunResult", "TeamMessage",
    "TruncatedFileError", "UnsupportedCodecError", "VideoInfo",
    "add_lower_third", "blames_input", "build_recap", "build_relay_argv", "check_glyphs", "classify_ffmpeg", "concat",
    "conformance", "contact_sheet", "content_hash",
    "cut", "is_conformant", "join_segments", "normalize", "poster_frame", "probe", "process_photo",
    "process_photos", "remux", "render_card", "resolve_font", "run_ffmpeg",
    "sniff", "team_message", "vertical_variant",
]
