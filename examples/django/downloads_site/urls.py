from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("download/<str:name>", views.download, name="download"),
    path("local/<str:name>", views.local, name="local"),
]
