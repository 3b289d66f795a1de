--
-- PostgreSQL database dump
--


-- The platform's schema as its ORM (Sequelize sync()) creates it in PostgreSQL 15.

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: enum_health_records_recordType; Type: TYPE; Schema: public; Owner: postgres
--

CREATE TYPE public."enum_health_records_recordType" AS ENUM (
    'CHECKUP',
    'VACCINATION',
    'ILLNESS',
    'INJURY',
    'SCREENING',
    'PHYSICAL_EXAM',
    'MENTAL_HEALTH',
    'DENTAL',
    'VISION',
    'HEARING',
    'EXAMINATION',
    'ALLERGY_DOCUMENTATION',
    'CHRONIC_CONDITION_REVIEW',
    'GROWTH_ASSESSMENT',
    'VITAL_SIGNS_CHECK',
    'EMERGENCY_VISIT',
    'FOLLOW_UP',
    'CONSULTATION',
    'DIAGNOSTIC_TEST',
    'PROCEDURE',
    'HOSPITALIZATION',
    'SURGERY',
    'COUNSELING',
    'THERAPY',
    'NUTRITION',
    'MEDICATION_REVIEW',
    'IMMUNIZATION',
    'LAB_RESULT',
    'RADIOLOGY',
    'OTHER'
);



--
-- Name: enum_medications_deaSchedule; Type: TYPE; Schema: public; Owner: postgres
--

CREATE TYPE public."enum_medications_deaSchedule" AS ENUM (
    'I',
    'II',
    'III',
    'IV',
    'V'
);



--
-- Name: enum_users_role; Type: TYPE; Schema: public; Owner: postgres
--

CREATE TYPE public.enum_users_role AS ENUM (
    'ADMIN',
    'NURSE',
    'SCHOOL_ADMIN',
    'DISTRICT_ADMIN',
    'VIEWER',
    'COUNSELOR'
);



SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: appointments; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.appointments (
    id uuid NOT NULL,
    "studentId" uuid NOT NULL,
    "nurseId" uuid,
    type character varying(50) NOT NULL,
    "scheduledAt" timestamp with time zone NOT NULL,
    duration integer DEFAULT 30 NOT NULL,
    status character varying(50) DEFAULT 'SCHEDULED'::character varying NOT NULL,
    reason character varying(500) NOT NULL,
    notes text,
    "recurringGroupId" uuid,
    "recurringFrequency" character varying(50),
    "recurringEndDate" timestamp with time zone,
    "createdAt" timestamp with time zone NOT NULL,
    "updatedAt" timestamp with time zone NOT NULL,
    "deletedAt" timestamp with time zone
);



--
-- Name: districts; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.districts (
    id uuid NOT NULL,
    name character varying(200) NOT NULL,
    code character varying(50) NOT NULL,
    address text,
    city character varying(100),
    state character varying(2),
    "zipCode" character varying(10),
    phone character varying(20),
    email character varying(255),
    "isActive" boolean DEFAULT true NOT NULL,
    "createdAt" timestamp with time zone NOT NULL,
    "updatedAt" timestamp with time zone NOT NULL,
    "deletedAt" timestamp with time zone
);



--
-- Name: emergency_contacts; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.emergency_contacts (
    id uuid NOT NULL,
    "studentId" uuid NOT NULL,
    "firstName" character varying(100) NOT NULL,
    "lastName" character varying(100) NOT NULL,
    relationship character varying(50) NOT NULL,
    "phoneNumber" character varying(20) NOT NULL,
    email character varying(255),
    address text,
    priority character varying(50) DEFAULT 'PRIMARY'::character varying NOT NULL,
    "isActive" boolean DEFAULT true NOT NULL,
    "preferredContactMethod" character varying(50) DEFAULT 'ANY'::character varying,
    "verificationStatus" character varying(50) DEFAULT 'UNVERIFIED'::character varying,
    "lastVerifiedAt" timestamp with time zone,
    "notificationChannels" text,
    "canPickupStudent" boolean DEFAULT false,
    notes text,
    "createdAt" timestamp with time zone,
    "updatedAt" timestamp with time zone
);



--
-- Name: health_records; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.health_records (
    id uuid NOT NULL,
    "studentId" uuid NOT NULL,
    "recordType" public."enum_health_records_recordType" NOT NULL,
    title character varying(200) NOT NULL,
    description text NOT NULL,
    "recordDate" timestamp with time zone NOT NULL,
    provider character varying(200),
    "providerNpi" character varying(20),
    facility character varying(200),
    "facilityNpi" character varying(20),
    diagnosis text,
    "diagnosisCode" character varying(20),
    treatment text,
    "followUpRequired" boolean DEFAULT false,
    "followUpDate" timestamp with time zone,
    "followUpCompleted" boolean DEFAULT false,
    attachments json DEFAULT '[]'::json NOT NULL,
    metadata jsonb,
    "isConfidential" boolean DEFAULT false,
    notes text,
    "createdBy" uuid,
    "updatedBy" uuid,
    "createdAt" timestamp with time zone,
    "updatedAt" timestamp with time zone,
    "deletedAt" timestamp with time zone
);



--
-- Name: medications; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.medications (
    id uuid NOT NULL,
    name character varying(255) NOT NULL,
    "genericName" character varying(255),
    "dosageForm" character varying(255) NOT NULL,
    strength character varying(255) NOT NULL,
    manufacturer character varying(255),
    ndc character varying(255),
    "isControlled" boolean DEFAULT false,
    "deaSchedule" public."enum_medications_deaSchedule",
    "requiresWitness" boolean DEFAULT false,
    "isActive" boolean DEFAULT true,
    "deletedAt" timestamp with time zone,
    "deletedBy" uuid,
    "createdAt" timestamp with time zone,
    "updatedAt" timestamp with time zone
);



--
-- Name: schools; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.schools (
    id uuid NOT NULL,
    name character varying(200) NOT NULL,
    code character varying(50) NOT NULL,
    "districtId" uuid NOT NULL,
    address text,
    city character varying(100),
    state character varying(2),
    "zipCode" character varying(10),
    phone character varying(20),
    email character varying(255),
    principal character varying(200),
    "totalEnrollment" integer,
    "isActive" boolean DEFAULT true NOT NULL,
    "createdAt" timestamp with time zone NOT NULL,
    "updatedAt" timestamp with time zone NOT NULL,
    "deletedAt" timestamp with time zone
);



--
-- Name: students; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.students (
    id uuid NOT NULL,
    "studentNumber" character varying(50) NOT NULL,
    "firstName" character varying(100) NOT NULL,
    "lastName" character varying(100) NOT NULL,
    "dateOfBirth" date NOT NULL,
    grade character varying(10) NOT NULL,
    gender character varying(20) NOT NULL,
    photo character varying(500),
    "medicalRecordNum" character varying(50),
    "isActive" boolean DEFAULT true NOT NULL,
    "enrollmentDate" timestamp with time zone NOT NULL,
    "nurseId" uuid,
    "schoolId" uuid,
    "districtId" uuid,
    "createdBy" uuid,
    "updatedBy" uuid,
    "createdAt" timestamp with time zone,
    "updatedAt" timestamp with time zone,
    "deletedAt" timestamp with time zone
);



--
-- Name: users; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.users (
    id uuid NOT NULL,
    email character varying(255) NOT NULL,
    password character varying(255) NOT NULL,
    "firstName" character varying(255) NOT NULL,
    "lastName" character varying(255) NOT NULL,
    role public.enum_users_role DEFAULT 'ADMIN'::public.enum_users_role NOT NULL,
    "isActive" boolean DEFAULT true NOT NULL,
    "lastLogin" timestamp with time zone,
    "schoolId" uuid,
    "districtId" uuid,
    phone character varying(255),
    "emailVerified" boolean DEFAULT false NOT NULL,
    "emailVerificationToken" character varying(255),
    "emailVerificationExpires" timestamp with time zone,
    "passwordResetToken" character varying(255),
    "passwordResetExpires" timestamp with time zone,
    "passwordChangedAt" timestamp with time zone,
    "twoFactorEnabled" boolean DEFAULT false NOT NULL,
    "twoFactorSecret" character varying(255),
    "failedLoginAttempts" integer DEFAULT 0 NOT NULL,
    "lockoutUntil" timestamp with time zone,
    "lastPasswordChange" timestamp with time zone,
    "mustChangePassword" boolean DEFAULT false NOT NULL,
    "mfaEnabled" boolean DEFAULT false NOT NULL,
    "mfaSecret" character varying(255),
    "mfaBackupCodes" text,
    "mfaEnabledAt" timestamp with time zone,
    "oauthProvider" character varying(255),
    "oauthProviderId" character varying(255),
    "profilePictureUrl" character varying(255),
    "isEmailVerified" boolean DEFAULT false NOT NULL,
    "emailVerifiedAt" timestamp with time zone,
    "deletedAt" timestamp with time zone,
    "createdAt" timestamp with time zone,
    "updatedAt" timestamp with time zone
);



--
-- Name: appointments appointments_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.appointments
    ADD CONSTRAINT appointments_pkey PRIMARY KEY (id);


--
-- Name: districts districts_code_key; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.districts
    ADD CONSTRAINT districts_code_key UNIQUE (code);


--
-- Name: districts districts_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.districts
    ADD CONSTRAINT districts_pkey PRIMARY KEY (id);


--
-- Name: emergency_contacts emergency_contacts_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.emergency_contacts
    ADD CONSTRAINT emergency_contacts_pkey PRIMARY KEY (id);


--
-- Name: health_records health_records_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.health_records
    ADD CONSTRAINT health_records_pkey PRIMARY KEY (id);


--
-- Name: medications medications_ndc_key; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.medications
    ADD CONSTRAINT medications_ndc_key UNIQUE (ndc);


--
-- Name: medications medications_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.medications
    ADD CONSTRAINT medications_pkey PRIMARY KEY (id);


--
-- Name: schools schools_code_key; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.schools
    ADD CONSTRAINT schools_code_key UNIQUE (code);


--
-- Name: schools schools_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.schools
    ADD CONSTRAINT schools_pkey PRIMARY KEY (id);


--
-- Name: students students_medicalRecordNum_key; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.students
    ADD CONSTRAINT "students_medicalRecordNum_key" UNIQUE ("medicalRecordNum");


--
-- Name: students students_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.students
    ADD CONSTRAINT students_pkey PRIMARY KEY (id);


--
-- Name: students students_studentNumber_key; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.students
    ADD CONSTRAINT "students_studentNumber_key" UNIQUE ("studentNumber");


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: districts_code; Type: INDEX; Schema: public; Owner: postgres
--

CREATE UNIQUE INDEX districts_code ON public.districts USING btree (code);


--
-- Name: districts_is_active; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX districts_is_active ON public.districts USING btree ("isActive");


--
-- Name: idx_appointments_created_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_appointments_created_at ON public.appointments USING btree ("createdAt");


--
-- Name: idx_appointments_nurse_scheduled; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_appointments_nurse_scheduled ON public.appointments USING btree ("nurseId", "scheduledAt");


--
-- Name: idx_appointments_nurse_scheduled_status; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_appointments_nurse_scheduled_status ON public.appointments USING btree ("nurseId", "scheduledAt", status);


--
-- Name: idx_appointments_recurring_group; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_appointments_recurring_group ON public.appointments USING btree ("recurringGroupId");


--
-- Name: idx_appointments_status_scheduled; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_appointments_status_scheduled ON public.appointments USING btree (status, "scheduledAt");


--
-- Name: idx_appointments_student_scheduled; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_appointments_student_scheduled ON public.appointments USING btree ("studentId", "scheduledAt");


--
-- Name: idx_appointments_student_status_scheduled; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_appointments_student_status_scheduled ON public.appointments USING btree ("studentId", status, "scheduledAt");


--
-- Name: idx_appointments_type_status_scheduled; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_appointments_type_status_scheduled ON public.appointments USING btree (type, status, "scheduledAt");


--
-- Name: idx_appointments_updated_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_appointments_updated_at ON public.appointments USING btree ("updatedAt");


--
-- Name: idx_districts_created_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_districts_created_at ON public.districts USING btree ("createdAt");


--
-- Name: idx_districts_state_city; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_districts_state_city ON public.districts USING btree (state, city);


--
-- Name: idx_districts_updated_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_districts_updated_at ON public.districts USING btree ("updatedAt");


--
-- Name: idx_emergency_contact_created_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_emergency_contact_created_at ON public.emergency_contacts USING btree ("createdAt");


--
-- Name: idx_emergency_contact_updated_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_emergency_contact_updated_at ON public.emergency_contacts USING btree ("updatedAt");


--
-- Name: idx_emergency_contacts_is_active; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_emergency_contacts_is_active ON public.emergency_contacts USING btree ("isActive");


--
-- Name: idx_emergency_contacts_priority; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_emergency_contacts_priority ON public.emergency_contacts USING btree (priority);


--
-- Name: idx_emergency_contacts_student_id; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_emergency_contacts_student_id ON public.emergency_contacts USING btree ("studentId");


--
-- Name: idx_emergency_contacts_student_priority; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_emergency_contacts_student_priority ON public.emergency_contacts USING btree ("studentId", priority, "isActive");


--
-- Name: idx_emergency_contacts_verification_status; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_emergency_contacts_verification_status ON public.emergency_contacts USING btree ("verificationStatus");


--
-- Name: idx_health_records_created_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_created_at ON public.health_records USING btree ("createdAt");


--
-- Name: idx_health_records_created_by; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_created_by ON public.health_records USING btree ("createdBy");


--
-- Name: idx_health_records_diagnosis_code; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_diagnosis_code ON public.health_records USING btree ("diagnosisCode");


--
-- Name: idx_health_records_followup; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_followup ON public.health_records USING btree ("followUpRequired", "followUpDate");


--
-- Name: idx_health_records_provider_date; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_provider_date ON public.health_records USING btree (provider, "recordDate");


--
-- Name: idx_health_records_student_confidential; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_student_confidential ON public.health_records USING btree ("studentId", "isConfidential");


--
-- Name: idx_health_records_student_date; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_student_date ON public.health_records USING btree ("studentId", "recordDate");


--
-- Name: idx_health_records_student_type_date; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_student_type_date ON public.health_records USING btree ("studentId", "recordType", "recordDate");


--
-- Name: idx_health_records_type_confidential_date; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_type_confidential_date ON public.health_records USING btree ("recordType", "isConfidential", "recordDate");


--
-- Name: idx_health_records_type_date; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_type_date ON public.health_records USING btree ("recordType", "recordDate");


--
-- Name: idx_health_records_updated_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_health_records_updated_at ON public.health_records USING btree ("updatedAt");


--
-- Name: idx_medications_active; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_medications_active ON public.medications USING btree ("isActive");


--
-- Name: idx_medications_active_name; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_medications_active_name ON public.medications USING btree ("isActive", name);


--
-- Name: idx_medications_controlled; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_medications_controlled ON public.medications USING btree ("isControlled");


--
-- Name: idx_medications_controlled_schedule; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_medications_controlled_schedule ON public.medications USING btree ("isControlled", "deaSchedule");


--
-- Name: idx_medications_created_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_medications_created_at ON public.medications USING btree ("createdAt");


--
-- Name: idx_medications_form_active; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_medications_form_active ON public.medications USING btree ("dosageForm", "isActive");


--
-- Name: idx_medications_generic_name; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_medications_generic_name ON public.medications USING btree ("genericName");


--
-- Name: idx_medications_manufacturer; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_medications_manufacturer ON public.medications USING btree (manufacturer);


--
-- Name: idx_medications_name; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_medications_name ON public.medications USING btree (name);


--
-- Name: idx_medications_ndc_unique; Type: INDEX; Schema: public; Owner: postgres
--

CREATE UNIQUE INDEX idx_medications_ndc_unique ON public.medications USING btree (ndc);


--
-- Name: idx_medications_updated_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_medications_updated_at ON public.medications USING btree ("updatedAt");


--
-- Name: idx_schools_created_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_schools_created_at ON public.schools USING btree ("createdAt");


--
-- Name: idx_schools_state_city; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_schools_state_city ON public.schools USING btree (state, city);


--
-- Name: idx_schools_updated_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_schools_updated_at ON public.schools USING btree ("updatedAt");


--
-- Name: idx_students_created_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_students_created_at ON public.students USING btree ("createdAt");


--
-- Name: idx_students_district_active; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_students_district_active ON public.students USING btree ("districtId", "isActive");


--
-- Name: idx_students_enrollment_date; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_students_enrollment_date ON public.students USING btree ("enrollmentDate");


--
-- Name: idx_students_school_grade_active; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_students_school_grade_active ON public.students USING btree ("schoolId", grade, "isActive");


--
-- Name: idx_students_updated_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_students_updated_at ON public.students USING btree ("updatedAt");


--
-- Name: idx_users_created_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_users_created_at ON public.users USING btree ("createdAt");


--
-- Name: idx_users_updated_at; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX idx_users_updated_at ON public.users USING btree ("updatedAt");


--
-- Name: schools_code; Type: INDEX; Schema: public; Owner: postgres
--

CREATE UNIQUE INDEX schools_code ON public.schools USING btree (code);


--
-- Name: schools_district_id; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX schools_district_id ON public.schools USING btree ("districtId");


--
-- Name: schools_is_active; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX schools_is_active ON public.schools USING btree ("isActive");


--
-- Name: students_district_id; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX students_district_id ON public.students USING btree ("districtId");


--
-- Name: students_grade; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX students_grade ON public.students USING btree (grade);


--
-- Name: students_is_active; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX students_is_active ON public.students USING btree ("isActive");


--
-- Name: students_last_name_first_name; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX students_last_name_first_name ON public.students USING btree ("lastName", "firstName");


--
-- Name: students_medical_record_num; Type: INDEX; Schema: public; Owner: postgres
--

CREATE UNIQUE INDEX students_medical_record_num ON public.students USING btree ("medicalRecordNum") WHERE ("medicalRecordNum" IS NOT NULL);


--
-- Name: students_nurse_id; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX students_nurse_id ON public.students USING btree ("nurseId");


--
-- Name: students_school_id; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX students_school_id ON public.students USING btree ("schoolId");


--
-- Name: students_student_number; Type: INDEX; Schema: public; Owner: postgres
--

CREATE UNIQUE INDEX students_student_number ON public.students USING btree ("studentNumber");


--
-- Name: users_district_id; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX users_district_id ON public.users USING btree ("districtId");


--
-- Name: users_email; Type: INDEX; Schema: public; Owner: postgres
--

CREATE UNIQUE INDEX users_email ON public.users USING btree (email);


--
-- Name: users_email_verification_token; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX users_email_verification_token ON public.users USING btree ("emailVerificationToken");


--
-- Name: users_is_active; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX users_is_active ON public.users USING btree ("isActive");


--
-- Name: users_lockout_until; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX users_lockout_until ON public.users USING btree ("lockoutUntil");


--
-- Name: users_password_reset_token; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX users_password_reset_token ON public.users USING btree ("passwordResetToken");


--
-- Name: users_role; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX users_role ON public.users USING btree (role);


--
-- Name: users_school_id; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX users_school_id ON public.users USING btree ("schoolId");


--
-- Name: appointments appointments_nurseId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.appointments
    ADD CONSTRAINT "appointments_nurseId_fkey" FOREIGN KEY ("nurseId") REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;


--
-- Name: appointments appointments_studentId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.appointments
    ADD CONSTRAINT "appointments_studentId_fkey" FOREIGN KEY ("studentId") REFERENCES public.students(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: emergency_contacts emergency_contacts_studentId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.emergency_contacts
    ADD CONSTRAINT "emergency_contacts_studentId_fkey" FOREIGN KEY ("studentId") REFERENCES public.students(id) ON UPDATE CASCADE;


--
-- Name: health_records health_records_studentId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.health_records
    ADD CONSTRAINT "health_records_studentId_fkey" FOREIGN KEY ("studentId") REFERENCES public.students(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: schools schools_districtId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.schools
    ADD CONSTRAINT "schools_districtId_fkey" FOREIGN KEY ("districtId") REFERENCES public.districts(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: students students_districtId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.students
    ADD CONSTRAINT "students_districtId_fkey" FOREIGN KEY ("districtId") REFERENCES public.districts(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: students students_nurseId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.students
    ADD CONSTRAINT "students_nurseId_fkey" FOREIGN KEY ("nurseId") REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;


--
-- Name: students students_schoolId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.students
    ADD CONSTRAINT "students_schoolId_fkey" FOREIGN KEY ("schoolId") REFERENCES public.schools(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: users users_schoolId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT "users_schoolId_fkey" FOREIGN KEY ("schoolId") REFERENCES public.schools(id) ON UPDATE CASCADE ON DELETE SET NULL;


--
-- PostgreSQL database dump complete
--


