"""`python -m intake`: run one intake process."""

from intake.app import create_app
from intake.settings import IntakeSettings
from services import serve

settings = IntakeSettings()
serve(create_app(settings), settings)
