-- Forward every stored measurement SR to tumour-response by C-STORE (README "Deploying").
-- The modality "tumour-response" is declared in orthanc.json (DicomModalities). The
-- service's own assessment SRs (pushed back to this PACS with TR_PUSH_DIMSE, calling AE
-- TUMOUR_RESPONSE) are not sent back to it.
SERVICE_MODALITY = 'tumour-response'
SERVICE_AET = 'TUMOUR_RESPONSE'

function OnStoredInstance(instanceId, tags, metadata, origin)
   if tags['Modality'] == 'SR' and origin['RemoteAet'] ~= SERVICE_AET then
      SendToModality(instanceId, SERVICE_MODALITY)
   end
end
