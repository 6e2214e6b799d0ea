from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from services_ai.host.runtime import get_host

from .widgets import render_card


@staff_member_required
def dashboard(request):
    host = get_host()
    cards = [
        card
        for plugin in host.implementers("dashboard_widget")
        if (card := render_card(host, plugin, request.user.get_username())) is not None
    ]
    return render(request, "dashboard/dashboard.html", {"cards": cards})
