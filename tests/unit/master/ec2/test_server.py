"""condor-cloud-ec2 (condor_cloud/master/ec2/server.py): serves the EC2 app with the API's TLS settings."""


def test_the_server_serves_the_ec2_app_with_the_apis_tls_settings(cloud, monkeypatch):
    from condor_cloud.master.api import server as api_server
    from condor_cloud.master.ec2 import server

    cloud.write_config("CLOUD_API_PLAIN_HTTP = true\nCLOUD_EC2_LISTEN = 127.0.0.1:18773\n")
    served = []
    monkeypatch.setattr(api_server, "serve", lambda *a: served.append(a))
    monkeypatch.setattr(api_server, "gunicorn_tls_options", lambda settings: {"certfile": "c", "keyfile": "k"})
    assert server.main() == 0
    app, listen, workers, options, name = served[0]
    assert type(app).__name__ == "Ec2App" and listen == ("127.0.0.1", 18773) and workers == 2
    assert options == {"certfile": "c", "keyfile": "k"} and name == "condor-cloud-ec2"


def test_the_server_refuses_to_start_without_a_certificate(cloud, capsys):
    from condor_cloud.master.ec2 import server

    cloud.write_config("CLOUD_API_TLS_CERT = /nonexistent/c.pem\nCLOUD_API_TLS_KEY = /nonexistent/k.pem\n")
    assert server.main() == 1
    assert "condor-cloud-ec2: cannot read the API's TLS certificate" in capsys.readouterr().err
