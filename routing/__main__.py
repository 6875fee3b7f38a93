"""`python -m routing`: run one routing process (replicas share the `routing` consumer group)."""

from routing.app import create_app
from routing.settings import RoutingSettings
from services import serve

settings = RoutingSettings()
serve(create_app(settings), settings)
