from django.urls import path

from tests.testapp import views

urlpatterns = [path("checkout/", views.checkout)]
